"""REST API of the chat app (answers, conversations, feedback) and the OpenAI-compatible
endpoint."""
