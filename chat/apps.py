from django.apps import AppConfig


class ChatConfig(AppConfig):
    """Conversations, the answer pipeline, the chat UI and the APIs (docs/architecture.md)."""

    name = "chat"
    verbose_name = "Chat"

    def ready(self) -> None:
        from chat.answering.extractive import ExtractiveAnswerer
        from chat.answering.prompts import PROMPT_VERSION_FLAG, prompt_version_variant_check
        from chat.metrics import BreakerCollector
        from flags.registry import validator_register
        from llm.providers.registry import local_provider_register
        from observability.metrics import scrape_time_collector_register

        # The gateway (llm) is below chat: chat hands it the local extractive answerer.
        local_provider_register(ExtractiveAnswerer)
        # flags may not import chat: chat tells it how to check the variants it reads.
        validator_register(PROMPT_VERSION_FLAG, prompt_version_variant_check)
        scrape_time_collector_register(BreakerCollector())
