"""The embedded pgvector is rebuilt on CPUs without AVX-512, once, and start-up says so."""

from __future__ import annotations

from pathlib import Path

import pytest

from embedded import bootstrap, pgvector_portable


@pytest.fixture
def pginstall(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "lib" / "postgresql").mkdir(parents=True)
    monkeypatch.setattr(pgvector_portable, "pginstall", lambda: tmp_path)
    return tmp_path


def test_a_cpu_without_avx512_needs_the_rebuild_until_it_is_done(
    pginstall: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pgvector_portable, "cpu_has_avx512", lambda: False)
    assert pgvector_portable.needed(pginstall)

    (pginstall / "lib" / "postgresql" / pgvector_portable.MARKER).write_text("built")

    assert not pgvector_portable.needed(pginstall)


def test_a_cpu_with_avx512_keeps_the_shipped_library(
    pginstall: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pgvector_portable, "cpu_has_avx512", lambda: True)

    assert not pgvector_portable.needed(pginstall)
    assert pgvector_portable.main([]) == 0  # nothing to do, nothing fetched


def test_start_up_refuses_a_library_that_would_crash_and_says_what_to_run(
    pginstall: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pgvector_portable, "cpu_has_avx512", lambda: False)

    with pytest.raises(SystemExit, match=r"make install"):
        bootstrap._require_portable_pgvector()


def test_this_machines_library_is_one_its_cpu_can_run() -> None:
    """What the rest of the suite relies on: either the CPU has AVX-512 or the rebuild ran."""
    assert not pgvector_portable.needed(pgvector_portable.pginstall())
