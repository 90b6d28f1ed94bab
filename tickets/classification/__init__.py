"""Ticket classification: category, urgency and sentiment, held to an output contract.

``classify(account=..., text=...)`` never raises for a provider problem: it falls back
to the local classifier (docs/ticket_classification.md).
"""

from __future__ import annotations

from tickets.classification.outcome import Classification
from tickets.classification.service import classify

__all__ = ["Classification", "classify"]
