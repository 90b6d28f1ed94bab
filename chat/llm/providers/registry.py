"""Which providers exist in this deployment, built from settings.

A provider is available only when it is configured (a key, or a base URL for
OpenAI-compatible servers); a route entry naming an unavailable provider is
skipped with a warning, so the chain falls through to what is there.
"""

from __future__ import annotations

from functools import lru_cache

from django.conf import settings

from chat.answering.extractive import ExtractiveAnswerer
from chat.llm.providers.anthropic_messages import AnthropicProvider
from chat.llm.providers.base import Provider
from chat.llm.providers.openai_chat import OpenAIChatProvider


def _build() -> dict[str, Provider]:
    # The extractive answerer needs no key and no network: always there, the
    # offline default and the last entry of every default chain.
    providers: dict[str, Provider] = {"local": ExtractiveAnswerer()}
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
