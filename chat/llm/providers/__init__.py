"""LLM providers: each turns a CompletionRequest into a stream of chat.llm.events."""
