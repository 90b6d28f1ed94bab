"""A Provider whose behaviour per call is scripted: for gateway logic tests.

The SDK-backed providers are tested against fake HTTP servers elsewhere
(tests/chat/test_providers.py); this one isolates the gateway's own rules.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

from llm.errors import ProviderError
from llm.events import CompletionRequest, End, Event, Start, TextDelta, Usage
from llm.providers.base import CallTimeouts


@dataclass(frozen=True)
class Say:
    text: str
    usage: Usage | None = Usage(100, 20)


@dataclass(frozen=True)
class Fail:
    error: ProviderError
    after_text: str = ""  # text streamed before failing


def fault(
    error_class: str = "server_error",
    *,
    retryable: bool = True,
    status: int = 500,
    retry_after: float | None = None,
) -> Fail:
    error = ProviderError(
        f"scripted {error_class}",
        error_class=error_class,
        retryable=retryable,
        status=status,
        retry_after=retry_after,
    )
    return Fail(error)


@dataclass
class ScriptedProvider:
    name: str
    script: deque[Say | Fail] = field(default_factory=deque)
    calls: list[tuple[str, CallTimeouts]] = field(default_factory=list)

    @property
    def local(self) -> bool:
        """Standing in for the extractive answerer, it is local: prompts reach it unredacted."""
        return self.name == "local"

    def then(self, *steps: Say | Fail) -> ScriptedProvider:
        self.script.extend(steps)
        return self

    def stream(
        self, request: CompletionRequest, *, model: str, timeouts: CallTimeouts
    ) -> Iterator[Event]:
        self.calls.append((model, timeouts))
        step = self.script.popleft() if self.script else Say(f"{self.name} answers.")
        yield Start(self.name, model)
        if isinstance(step, Fail):
            for word in step.after_text.split():
                yield TextDelta(word + " ")
            raise step.error
        for word in step.text.split(" "):
            yield TextDelta(word + " ")
        if step.usage:
            yield step.usage
        yield End()
