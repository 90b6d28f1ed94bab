from django.apps import AppConfig


class ChatConfig(AppConfig):
    """Conversations, the answer pipeline and the LLM gateway (see docs/architecture.md)."""

    name = "chat"
    verbose_name = "Chat"
