"""The passage scan's false alarms on benign documents and its recall on planted instructions.

Target (issue 19, item 3): at most 1e-4 of the chunks of a benign corpus of 10,000 or
more flagged ``instructions`` (or any other flag), with every instruction of
tests/data/planted_instructions.jsonl still flagged.

Corpus: the Python 3.11 and PostgreSQL 15 manuals (Debian's python3.11-doc and
postgresql-doc-15, installed if missing), parsed and chunked by Cairn's own parsers and
chunker, or the folders given with ``--corpus``. The rules were written on the
Python manual; the PostgreSQL manual was then held out (25 false flags of 11,167 at
its first scan, since fixed: development data from then on), and so on (see
ingest.passage_eval); the last held-out run, with the rules as they are:

    .venv/bin/python benchmarks/passage_scan.py --corpus /usr/share/doc/nodejs/api \
        --corpus /usr/share/doc/python-sqlalchemy-doc/html    # nodejs-doc, python-sqlalchemy-doc

gave 0 of 13,627 and 0 of 12,395 chunks flagged. Every false flag is listed
with the sentences that raised it. Recall: each planted instruction, and each injection
of the labelled question file (tests/data/prompt_injections.jsonl, written by others),
is planted in a benign paragraph and the paragraph is scanned.

No database and no network: the detector's embedder is the bundled model, and the
embeddings the scan makes are kept out of the usage ledger. Prints a table and one
JSON line.

    .venv/bin/python benchmarks/passage_scan.py [--corpus DIR ...] [--limit N]

``--limit 200`` is a smoke run of seconds (tests/benchmarks/test_passage_scan.py runs it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
HOME = REPO_ROOT / "benchmarks" / ".cache" / "passage-scan-home"
TARGET_RATE = 1e-4


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--corpus", type=Path, action="append",
        help="a folder of documents Cairn reads (repeatable); default: both manuals",
    )  # fmt: skip
    parser.add_argument(
        "--limit", type=int, default=None,
        help="at most N chunks per corpus and N instructions per planted set (smoke run)",
    )  # fmt: skip
    return parser.parse_args(argv)


def _django() -> None:
    """Settings only: the scan reads no table, so no database is started."""
    HOME.mkdir(parents=True, exist_ok=True)
    os.environ.update({"CAIRN_HOME": str(HOME), "DJANGO_SETTINGS_MODULE": "config.settings",
                       "CAIRN_LOG_LEVEL": "WARNING"})  # fmt: skip
    for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"):
        os.environ.pop(name, None)
    import django

    django.setup()


def measure(args: argparse.Namespace) -> Any:
    """The report of ingest.passage_eval on the corpora of ``args``."""
    from ingest.passage_eval import MANUALS, passage_report

    corpora = (
        MANUALS if not args.corpus else {_shown(p.resolve()): p.resolve() for p in args.corpus}
    )
    return passage_report(corpora, limit=args.limit)


def _shown(path: Path) -> str:
    try:
        return path.relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return str(path)


def report(result: Any, args: argparse.Namespace) -> dict:
    """Print the table and the JSON line; return the latter."""
    from ingest.passage_eval import DEVELOPMENT, HELD_OUT

    print(result.as_text())
    figures = result.as_dict()
    summary = {
        "benchmark": "passage_scan",
        "limit": args.limit,
        "target_rate": TARGET_RATE,
        "development": DEVELOPMENT if not args.corpus else None,
        "held_out": HELD_OUT if not args.corpus else None,
        "benign": {
            name: {key: part[key] for key in ("chunks", "false_flags", "rate", "seconds")}
            for name, part in figures["benign"].items()
        },
        "recall": {name: r["recall"] for name, r in figures["recall"].items()},
    }
    print(json.dumps(summary))
    return summary


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    sys.path.insert(0, str(REPO_ROOT))
    if not args.corpus:
        from benchmarks.retrieval import ensure_manuals

        ensure_manuals()
    _django()
    report(measure(args), args)


if __name__ == "__main__":
    main()
