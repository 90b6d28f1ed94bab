"""What a classification says about a ticket (the contract other modules code against)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

URGENCIES = ("low", "normal", "high", "urgent")
SENTIMENTS = ("negative", "neutral", "positive")
LOCAL_CLASSIFIER = "local"


@dataclass(frozen=True)
class Classification:
    category: str
    urgency: str  # one of URGENCIES
    sentiment: str  # one of SENTIMENTS
    confidence: float  # of the category, 0–1
    classified_by: str  # "local" or "<provider>/<model>"
    cached: bool = False

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("cached")
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any], *, cached: bool = False) -> Classification:
        return cls(
            category=str(data["category"]),
            urgency=str(data["urgency"]),
            sentiment=str(data["sentiment"]),
            confidence=float(data["confidence"]),
            classified_by=str(data["classified_by"]),
            cached=cached,
        )
