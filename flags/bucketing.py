"""Which subjects a rollout picks: a hash, so the choice is stable and needs no storage."""

from __future__ import annotations

import hashlib
from decimal import Decimal

BUCKETS = 10_000  # a rollout's granularity: 0.01 %


def bucket(*, salt: str, key: str, subject: str) -> int:
    """The subject's bucket, 0–9999, for this flag.

    SHA-256 of salt, key and subject: uniform, the same in every process and on every
    run (unlike ``hash()``), and independent between flags with different salts, so two
    5% rollouts do not hand both variants to the same 5% of users.
    """
    digest = hashlib.sha256(f"{salt}\x1f{key}\x1f{subject}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def in_rollout(*, salt: str, key: str, subject: str, percent: Decimal | float | int) -> bool:
    """True when the subject falls inside a ``percent`` % rollout (0 nobody, 100 everybody).

    Growing the percentage keeps everybody already in: bucket < 500 implies bucket < 2000.
    """
    threshold = int(Decimal(str(percent)) * BUCKETS / 100)
    return bucket(salt=salt, key=key, subject=subject) < threshold
