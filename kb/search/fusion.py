"""Reciprocal rank fusion: one ranking from several, by rank rather than by score.

Scores of different channels (cosine similarity, BM25) are not comparable;
ranks are. Each channel contributes weight / (k + rank) for every chunk it
ranked (rank 1 = best); chunks absent from a channel get nothing from it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

DEFAULT_RRF_K = 60


@dataclass(frozen=True)
class RankedHit:
    chunk_id: int
    score: float  # the channel's own score (similarity, BM25)


@dataclass
class FusedHit:
    chunk_id: int
    fused_score: float
    ranks: dict[str, int] = field(default_factory=dict)  # channel -> 1-based rank
    scores: dict[str, float] = field(default_factory=dict)  # channel -> its score


def reciprocal_rank_fusion(
    channels: Mapping[str, Sequence[RankedHit]],
    *,
    k: int = DEFAULT_RRF_K,
    weights: Mapping[str, float] | None = None,
) -> list[FusedHit]:
    """Fuse best-first lists; ties broken by best single rank, then chunk id (stable)."""
    fused: dict[int, FusedHit] = {}
    for channel, hits in channels.items():
        weight = 1.0 if weights is None else weights.get(channel, 1.0)
        for rank, hit in enumerate(hits, start=1):
            entry = fused.setdefault(hit.chunk_id, FusedHit(hit.chunk_id, 0.0))
            entry.fused_score += weight / (k + rank)
            entry.ranks[channel] = rank
            entry.scores[channel] = hit.score
    return sorted(
        fused.values(),
        key=lambda hit: (-hit.fused_score, min(hit.ranks.values()), hit.chunk_id),
    )
