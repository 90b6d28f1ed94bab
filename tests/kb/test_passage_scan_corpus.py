"""Gate (issue 19, item 3): the passage scan's false-flag rate on a benign corpus of more
than 10,000 chunks — the PostgreSQL 15 manual, 11,167 chunks, as ingestion parses and
chunks it — is at most 1e-4, i.e. at most one flagged chunk. Measured: none (margin:
one chunk). Needs Debian's postgresql-doc-15 (CI installs it; skipped where it is
absent). Takes about 40 s on the 2-core machine, most of it parsing the HTML.

The manual is a regression gate, not the held-out figure: the scan's rules were revised
after looking at its false flags. The held-out figures are in
benchmarks/passage_scan.py's docstring and docs/security.md.
"""

from __future__ import annotations

import os

import pytest

from ingest.passage_eval import MANUALS, benign_part, document_chunks
from kb.embeddings.usage import usage_recording_paused

MANUAL = MANUALS["postgresql-doc-15"]
MAX_RATE = 1e-4


def test_the_scan_flags_at_most_one_chunk_in_ten_thousand_of_the_postgresql_manual() -> None:
    if not any(MANUAL.glob("*.html")):
        # CI installs the manual (.ci/run) and sets this, so there the gate cannot be
        # skipped; a developer's `make test` without Debian's package skips it, saying so.
        if os.environ.get("CAIRN_REQUIRE_BENIGN_CORPUS"):
            pytest.fail(f"postgresql-doc-15 is not installed ({MANUAL}); .ci/run installs it")
        pytest.skip(f"postgresql-doc-15 is not installed ({MANUAL}): apt-get install it")
    texts = document_chunks(MANUAL)
    with usage_recording_paused():
        part = benign_part("postgresql-doc-15", texts)

    assert part.chunks >= 10_000
    flagged = [(f.chunk, f.flags, f.sentences[:1]) for f in part.flagged]
    assert part.rate <= MAX_RATE, flagged
