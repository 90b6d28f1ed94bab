"""LLM providers: each turns a CompletionRequest into a stream of llm.events."""
