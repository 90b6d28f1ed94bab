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

        # flags may not import chat: chat tells it how to check the variants it reads.
        from chat.answering.prompts import PROMPT_VERSION_FLAG, prompt_version_variant_check
        from chat.llm.routing import ROUTE_CHAIN_FLAG, route_chain_variant_check
        from flags.registry import validator_register

        validator_register(PROMPT_VERSION_FLAG, prompt_version_variant_check)
        validator_register(ROUTE_CHAIN_FLAG, route_chain_variant_check, prefix=True)
        scrape_time_collector_register(BreakerCollector())
