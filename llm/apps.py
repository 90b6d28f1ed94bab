from django.apps import AppConfig


class LlmConfig(AppConfig):
    """The LLM gateway: providers behind one protocol, routes, retries, breakers,
    fallbacks, the answer caches and the usage ledger (see docs/architecture.md). No UI.

    Below chat: the local extractive answerer is chat's, so chat registers it as the
    ``local`` provider from its own ``ready()``.
    """

    name = "llm"
    verbose_name = "LLM gateway"

    def ready(self) -> None:
        from flags.registry import validator_register
        from kb.embeddings.usage import set_usage_recorder
        from llm.embedding_ledger import record_embedding_call
        from llm.routing import ROUTE_CHAIN_FLAG, route_chain_variant_check

        # kb may not import llm; llm plugs the ledger into kb's embedders instead.
        set_usage_recorder(record_embedding_call)
        # flags may not import llm: llm tells it how to check a route chain variant.
        validator_register(ROUTE_CHAIN_FLAG, route_chain_variant_check, prefix=True)
