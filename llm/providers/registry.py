"""Which providers exist in this deployment, built from settings.

A provider is available only when it is configured (a key, or a base URL for
OpenAI-compatible servers); a route entry naming an unavailable provider is
skipped with a warning, so the chain falls through to what is there.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

from django.conf import settings

from llm.providers.anthropic_messages import AnthropicProvider
from llm.providers.base import Provider
from llm.providers.openai_chat import OpenAIChatProvider

# The "local" provider: the extractive answerer, which lives with the answers (chat) and is
# registered from ChatConfig.ready(), since the gateway sits below chat.
_local_factory: Callable[[], Provider] | None = None


def local_provider_register(factory: Callable[[], Provider]) -> None:
    """Make ``factory()`` the ``local`` provider (needs no key, no network)."""
    global _local_factory
    _local_factory = factory
    reset_providers()


def _build() -> dict[str, Provider]:
    # The local provider needs no key and no network: always there, the offline default
    # and the last entry of every default chain.
    providers: dict[str, Provider] = {}
    if _local_factory is not None:
        providers["local"] = _local_factory()
    if settings.OPENAI_API_KEY:
        providers["openai"] = OpenAIChatProvider(settings.OPENAI_API_KEY, name="openai")
    if settings.CAIRN_OPENAI_COMPATIBLE_BASE_URL:
        providers["openai_compatible"] = OpenAIChatProvider(
            settings.CAIRN_OPENAI_COMPATIBLE_API_KEY or "none",
            base_url=settings.CAIRN_OPENAI_COMPATIBLE_BASE_URL,
            name="openai_compatible",
            local=settings.CAIRN_OPENAI_COMPATIBLE_LOCAL,
        )
    if settings.ANTHROPIC_API_KEY:
        providers["anthropic"] = AnthropicProvider(
            settings.ANTHROPIC_API_KEY, base_url=settings.CAIRN_ANTHROPIC_BASE_URL or None
        )
    return providers


@lru_cache(maxsize=1)
def configured_providers() -> dict[str, Provider]:
    """The process's providers (clients keep their connection pools between calls)."""
    return _build()


def reset_providers() -> None:
    configured_providers.cache_clear()
