"""System-prompt leaks, caught while the answer streams and before the reader sees them.

Two signs: the canary (a secret marker only the system prompt holds) appears in the
output, or the output repeats the system prompt verbatim for LEAK_WORDS words in a
row. A model that obeys "reveal your system prompt" starts with its first line, long
before the canary at the end, so the canary alone would let most of it through.

Streaming stays live: only the tail that could still turn out to be a leak waits
(the last LEAK_WORDS - 1 words, and enough characters to hide a canary's start).
A run of LEAK_WORDS words is rare in an honest answer; the abstention sentence,
which the system prompt quotes and answers legitimately repeat, is left out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

LEAK_WORDS = 6
_WORD = re.compile(r"\w+")
_TAIL_CHARS = 600  # enough characters to hold more than LEAK_WORDS words


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


class PromptLeakGuard:
    def __init__(self, system: str, *, canary: str, quotable: Iterable[str] = ()) -> None:
        for allowed in quotable:
            system = system.replace(allowed, " | ")  # a break: no run crosses it
        self.canary = canary
        self._runs: set[tuple[str, ...]] = set()
        for part in system.split(" | "):
            words = _words(part.replace(canary, " "))
            self._runs.update(
                tuple(words[i : i + LEAK_WORDS]) for i in range(len(words) - LEAK_WORDS + 1)
            )

    def leaked(self, output: str) -> bool:
        """Whether ``output`` (all of it so far) shows the system prompt."""
        if self.canary in output:
            return True
        words = _words(output[-_TAIL_CHARS:])
        return any(
            tuple(words[i : i + LEAK_WORDS]) in self._runs
            for i in range(len(words) - LEAK_WORDS + 1)
        )

    def releasable(self, held: str) -> int:
        """How much of ``held`` (the not yet shown end of the output) can be shown."""
        by_canary = len(held) - (len(self.canary) - 1)
        words = list(_WORD.finditer(held))
        by_words = words[-(LEAK_WORDS - 1)].start() if len(words) >= LEAK_WORDS - 1 else 0
        return max(0, min(by_canary, by_words))
