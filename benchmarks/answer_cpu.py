"""CPU time of one answer with the default (extractive) answerer, end to end, in process.

The target (issue 17, item 4): one answer costs <= 60 ms of CPU, the question's embedding
included. Loads the demo knowledge base (kb/demo/documents) into a throwaway account the
way ``manage.py evaluate --docs`` does, stores its units' vectors as ingestion leaves them
(kb.services.units.knowledge_base_units_embed, what units_embed_task runs), then forgets
this process's memory of vectors, so they come from the table the way a web process that
did not ingest finds them. Then it asks the distinct demo golden questions
(tests/golden/questions.jsonl) one after the other through the chat's own service
(conversation_start, then answer_stream to the end: what POST /api/v1/answers runs in
process), each answered fresh: the answer caches are emptied before each question (outside
the clock), so they are consulted but never serve. The streaming pause of the extractive
answerer is off (CAIRN_EXTRACTIVE_TOKEN_DELAY_MS=0; it sleeps, it costs no CPU).

CPU is ``time.process_time()`` around each answer: every thread of this process (torch's
included), not the embedded PostgreSQL's own processes. One warm-up question (not
measured) loads the model first, as a server's first request does.
Prints a table and one JSON line.

    .venv/bin/python benchmarks/answer_cpu.py [--questions N] [--profile] [--dump FILE]

``--questions 3`` is a smoke test of a few seconds (it loads only the documents those
questions come from); ``--profile`` prints where the CPU
went (cProfile, cumulative); ``--dump FILE`` writes each answer (status, text, citations,
support scores) as JSON, to compare two versions of the code.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
HOME = REPO_ROOT / "benchmarks" / ".cache" / "answer-cpu-home"
DEMO_QUESTIONS = REPO_ROOT / "tests" / "golden" / "questions.jsonl"
DEMO_DOCUMENTS = REPO_ROOT / "kb" / "demo" / "documents"
WARM_UP_QUESTION = "What is Ledgerly?"
CPU_P50_TARGET_MS = 60.0
# No language model may answer instead of the extractive answerer.
_PROVIDER_SETTINGS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "CAIRN_OPENAI_COMPATIBLE_BASE_URL")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--questions", type=int, default=0, help="First N questions (0: all).")
    parser.add_argument("--profile", action="store_true", help="Print a cProfile summary.")
    parser.add_argument("--dump", type=Path, help="Write every answer to this JSON file.")
    return parser.parse_args(argv)


def questions(count: int) -> dict[str, list[str]]:
    """The distinct demo golden questions (answerable or not, in file order), each with
    the documents it names as sources; the first ``count`` (0: all)."""
    rows = [json.loads(line) for line in DEMO_QUESTIONS.read_text().splitlines() if line.strip()]
    found: dict[str, list[str]] = {}
    for row in rows:
        found.setdefault(row["question"], list(row.get("sources", [])))
    return dict(list(found.items())[:count]) if count else found


def main() -> None:
    args = parse_args()
    os.environ["CAIRN_EXTRACTIVE_TOKEN_DELAY_MS"] = "0"  # noqa: S105 (a pause, not a secret)
    for name in _PROVIDER_SETTINGS:
        os.environ.pop(name, None)
    sys.path.insert(0, str(REPO_ROOT))
    from benchmarks._embedded import embedded_django

    embedded_django(HOME)
    report(measure(args))


# --- the measurement -----------------------------------------------------------------


def _load(names: set[str] | None) -> Any:
    """The demo knowledge base (only the documents ``names``, if given) in a throwaway
    account, its units' vectors stored as the task queued after ingestion stores them."""
    from chat.evaluation import golden_documents_load
    from kb.services.units import knowledge_base_units_embed

    if names is None:
        account, knowledge_base = golden_documents_load(DEMO_DOCUMENTS)
    else:
        with tempfile.TemporaryDirectory() as chosen:
            for name in sorted(names):
                shutil.copy(DEMO_DOCUMENTS / name, Path(chosen) / name)
            account, knowledge_base = golden_documents_load(Path(chosen))
    started = time.process_time()
    knowledge_base_units_embed(knowledge_base_id=knowledge_base.pk)
    units_cpu_ms = (time.process_time() - started) * 1000
    return account, knowledge_base, units_cpu_ms


def _fresh_process_memory() -> None:
    """Forget what this process computed while ingesting (vectors, query embeddings)."""
    from kb.embeddings.queries import _query_embedding
    from kb.embeddings.texts import texts_forget

    texts_forget()
    _query_embedding.cache_clear()


def _caches_empty(account_id: int) -> None:
    """No answer cache can serve the next question (both are consulted all the same)."""
    from django.core.cache import cache

    from llm.models import SemanticCacheEntry

    SemanticCacheEntry.objects.filter(account_id=account_id).delete()
    cache.clear()


def _ask(knowledge_base: Any, question: str) -> Any:
    """One question through the chat's service, to its final message."""
    from chat.models import Message
    from chat.services.answers import answer_stream
    from chat.services.conversations import conversation_start

    _, answer = conversation_start(user_id=None, knowledge_base=knowledge_base, text=question)
    for _ in answer_stream(message_id=answer.pk, cancelled=lambda: False):
        pass
    return Message.objects.get(pk=answer.pk)


def _answer_data(message: Any) -> dict[str, Any]:
    """What must not change between two versions of the code."""
    citations = [
        [
            c.number,
            c.kind,
            c.document_title,
            c.heading_path,
            c.excerpt[:80],
            None if c.support_score is None else round(c.support_score, 6),
        ]
        for c in message.citations.order_by("kind", "number")
    ]
    return {
        "status": message.status,
        "problem": message.problem,
        "text": message.content,
        "sentences": message.sentences,
        "citations": citations,
        "provider": message.provider,
        "cached": message.cached,
    }


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from kb.models import Account, TextEmbedding
    from kb.services.documents import accounts_delete

    asked = questions(args.questions)
    # A smoke run loads only the documents its questions come from.
    names = {name for sources in asked.values() for name in sources} if args.questions else None
    account, knowledge_base, units_cpu_ms = _load(names)
    stored = TextEmbedding.objects.filter(knowledge_base=knowledge_base).count()
    cpu_ms: list[float] = []
    wall_ms: list[float] = []
    answers: dict[str, dict[str, Any]] = {}
    # CPU time, not wall: waiting for PostgreSQL is not this process's cost.
    profiler = cProfile.Profile(time.process_time) if args.profile else None
    try:
        _fresh_process_memory()
        _caches_empty(account.pk)
        _ask(knowledge_base, WARM_UP_QUESTION)
        for question in asked:
            _caches_empty(account.pk)
            if profiler:
                profiler.enable()
            cpu, wall = time.process_time(), time.perf_counter()
            message = _ask(knowledge_base, question)
            cpu_ms.append((time.process_time() - cpu) * 1000)
            wall_ms.append((time.perf_counter() - wall) * 1000)
            if profiler:
                profiler.disable()
            answers[question] = _answer_data(message)
    finally:
        accounts_delete(accounts=Account.objects.filter(pk=account.pk))
    if args.dump:
        args.dump.write_text(json.dumps(answers, indent=1, sort_keys=True) + "\n")
    if profiler:
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("cumulative").print_stats(rf"{REPO_ROOT}/(?!\.venv)", 60)
        stats.sort_stats("tottime").print_stats(30)
        print(out.getvalue())
    return {
        "cpu_ms": cpu_ms, "wall_ms": wall_ms, "answers": answers,
        "stored_vectors": stored, "units_cpu_ms": units_cpu_ms,
    }  # fmt: skip


# --- the report ----------------------------------------------------------------------


def _stats(values: Sequence[float]) -> tuple[float, float, float]:
    if not values:
        return float("nan"), float("nan"), float("nan")
    return (
        float(np.percentile(values, 50)),
        float(np.percentile(values, 95)),
        float(np.mean(values)),
    )


def report(measured: dict[str, Any]) -> dict[str, Any]:
    """Print the table and the JSON line; return what the JSON line says."""
    answers = measured["answers"].values()
    statuses = [a["status"] for a in answers]
    served = sum(1 for a in answers if a["cached"])
    local = sum(1 for a in answers if a["provider"] == "local")
    answered, abstained = statuses.count("done"), statuses.count("abstained")
    others = len(statuses) - answered - abstained
    c50, c95, cmean = _stats(measured["cpu_ms"])
    w50, w95, wmean = _stats(measured["wall_ms"])
    rows = [
        ("questions", f"{len(statuses)} distinct demo golden questions"),
        ("  answered / abstained", f"{answered} / {abstained} (others {others})"),
        ("  by the extractive answerer", f"{local}; served from a cache {served} (target 0)"),
        ("vectors stored at ingestion", f"{measured['stored_vectors']} (units task "
                                        f"{measured['units_cpu_ms'] / 1000:.1f} s CPU)"),
        ("CPU per answer p50/p95/mean", f"{c50:.1f} / {c95:.1f} / {cmean:.1f} ms "
                                        f"(target p50 <= {CPU_P50_TARGET_MS:.0f})"),
        ("wall per answer p50/p95/mean", f"{w50:.1f} / {w95:.1f} / {wmean:.1f} ms"),
    ]  # fmt: skip
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    line = {
        "benchmark": "answer_cpu",
        "questions": len(statuses),
        "answered": answered,
        "abstained": abstained,
        "served_from_cache": served,
        "stored_vectors": measured["stored_vectors"],
        "units_task_cpu_s": round(measured["units_cpu_ms"] / 1000, 2),
        "cpu_p50_ms": round(c50, 2),
        "cpu_p95_ms": round(c95, 2),
        "cpu_mean_ms": round(cmean, 2),
        "wall_p50_ms": round(w50, 2),
        "wall_p95_ms": round(w95, 2),
        "wall_mean_ms": round(wmean, 2),
        "met": {"cpu_p50_le_60ms": bool(c50 <= CPU_P50_TARGET_MS)},
    }
    print(json.dumps(line))
    return line


if __name__ == "__main__":
    main()
