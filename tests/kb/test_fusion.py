"""Reciprocal rank fusion on a hand-made example."""

from __future__ import annotations

import pytest

from kb.search.fusion import RankedHit, reciprocal_rank_fusion


def test_a_chunk_both_channels_like_beats_one_only_one_channel_loves() -> None:
    vector = [RankedHit(1, 0.9), RankedHit(2, 0.8), RankedHit(3, 0.7)]
    keyword = [RankedHit(3, 12.0), RankedHit(4, 9.0), RankedHit(1, 2.0)]

    fused = reciprocal_rank_fusion({"vector": vector, "keyword": keyword}, k=60)

    # 1: 1/61 + 1/63; 3: 1/63 + 1/61 (a tie, broken by best single rank, then id);
    # 2: 1/62 only; 4: 1/62 only.
    assert [hit.chunk_id for hit in fused] == [1, 3, 2, 4]
    assert fused[0].fused_score == pytest.approx(1 / 61 + 1 / 63)
    assert fused[0].ranks == {"vector": 1, "keyword": 3}
    assert fused[1].scores == {"vector": 0.7, "keyword": 12.0}


def test_weights_tilt_the_order() -> None:
    vector = [RankedHit(1, 0.9), RankedHit(2, 0.8)]
    keyword = [RankedHit(2, 5.0), RankedHit(1, 1.0)]

    even = reciprocal_rank_fusion({"vector": vector, "keyword": keyword})
    keyword_heavy = reciprocal_rank_fusion(
        {"vector": vector, "keyword": keyword}, weights={"vector": 1.0, "keyword": 2.0}
    )

    assert [h.chunk_id for h in even] == [1, 2]  # tie: lower id first
    assert [h.chunk_id for h in keyword_heavy] == [2, 1]


def test_smaller_k_makes_top_ranks_count_more() -> None:
    vector = [RankedHit(1, 0.9), RankedHit(2, 0.8), RankedHit(3, 0.7)]
    keyword = [RankedHit(3, 9.0), RankedHit(2, 8.0)]

    fused = reciprocal_rank_fusion({"vector": vector, "keyword": keyword}, k=1)

    # k=1: 1 -> 1/2; 2 -> 1/3 + 1/3; 3 -> 1/4 + 1/2
    assert [h.chunk_id for h in fused] == [3, 2, 1]
