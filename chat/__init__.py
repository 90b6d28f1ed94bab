"""Grounded answers: chat UI, APIs and the LLM gateway."""
