from django.apps import AppConfig


class ChatConfig(AppConfig):
    """Conversations, the answer pipeline and the LLM gateway (see docs/architecture.md)."""

    name = "chat"
    verbose_name = "Chat"

    def ready(self) -> None:
        # kb may not import chat; chat plugs the ledger into kb's embedders instead.
        from chat.llm.embedding_ledger import record_embedding_call
        from chat.metrics import BreakerCollector
        from kb.embeddings.usage import set_usage_recorder
        from observability.metrics import scrape_time_collector_register

        set_usage_recorder(record_embedding_call)
        scrape_time_collector_register(BreakerCollector())
