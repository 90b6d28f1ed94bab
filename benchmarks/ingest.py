"""Ingestion throughput on a real corpus: the PostgreSQL 15 manual (HTML, ~1,170 files).

Target (issue 3): pipeline throughput >= 0.8 x raw embedding throughput on the same
chunk texts, on the 2-core machine.

What runs: a private embedded PostgreSQL (benchmarks/.cache/ingest-home), a real
Celery worker on the filesystem broker, and every file uploaded through the same
service the admin uses; the clock runs from the first upload to the last document
settled. Then, in this process, the bundled model encodes the very texts the
pipeline embedded (heading path + chunk text), best case: one call, sorted by
length by sentence-transformers. Prints a table and one JSON line.

    .venv/bin/python benchmarks/ingest.py [--limit N] [--concurrency C] [--corpus DIR]

``--corpus kb/demo/documents --limit 2 --concurrency 1`` is a smoke run of a few
seconds (tests/benchmarks/test_ingest.py runs it, with a worker on the test database).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
CORPUS = Path("/usr/share/doc/postgresql-doc-15/html")
HOME = REPO_ROOT / "benchmarks" / ".cache" / "ingest-home"
TARGET_RATIO = 0.8
STALL_SECONDS = 300.0  # no document settled for this long: the worker is not consuming


def ensure_corpus() -> None:
    if CORPUS.is_dir() and any(CORPUS.glob("*.html")):
        return
    print("installing Debian's postgresql-doc-15 (the corpus)…", flush=True)
    apt = ["apt-get"] if os.geteuid() == 0 else ["sudo", "apt-get"]
    subprocess.run([*apt, "update", "-qq"], check=True)
    subprocess.run(
        [*apt, "install", "-y", "-qq", "postgresql-doc-15"],
        check=True,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )


class PeakRss:
    """Samples the resident memory of a process tree (the worker and its pool)."""

    def __init__(self, pid: int) -> None:
        import psutil

        self.root = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            try:
                processes = [self.root, *self.root.children(recursive=True)]
                self.peak = max(self.peak, sum(p.memory_info().rss for p in processes))
            except psutil.Error:
                pass
            time.sleep(0.2)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--limit", type=int, default=0, help="only the first N files")
    parser.add_argument("--concurrency", type=int, default=2, help="worker processes")
    parser.add_argument(
        "--corpus", type=Path, default=CORPUS,
        help="a folder of documents Cairn reads (default: the PostgreSQL 15 manual's HTML)",
    )  # fmt: skip
    return parser.parse_args(argv)


def corpus_files(corpus: Path, limit: int) -> list[Path]:
    """The corpus's files Cairn accepts (by extension), in name order, the first ``limit``."""
    from ingest.filetypes import BY_EXTENSION

    files = sorted(p for p in corpus.iterdir() if p.is_file() and p.suffix.lower() in BY_EXTENSION)
    return files[:limit] if limit else files


def wait_settled(ids: list[int], worker: subprocess.Popen[bytes], log: Path) -> None:
    """Until no document of ``ids`` is pending or processing; SystemExit if the worker
    exits or nothing settles for STALL_SECONDS (a worker on another broker or queue)."""
    from kb.models import Document

    unsettled = Document.objects.filter(pk__in=ids, status__in=["pending", "processing"])
    left, progressed = len(ids), time.monotonic()
    while (now_left := unsettled.count()) > 0:
        if worker.poll() is not None or time.monotonic() - progressed > STALL_SECONDS:
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            raise SystemExit(f"{now_left} documents never settled; worker log:\n{tail}")
        if now_left < left:
            left, progressed = now_left, time.monotonic()
        time.sleep(0.2)


def main() -> None:
    args = parse_args()
    if args.corpus == CORPUS:
        ensure_corpus()

    HOME.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(HOME / "broker", ignore_errors=True)
    shutil.rmtree(HOME / "media", ignore_errors=True)
    os.environ.update(
        {
            "CAIRN_HOME": str(HOME),
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "CAIRN_LOG_LEVEL": "WARNING",
        }
    )
    for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"):
        os.environ.pop(name, None)
    sys.path.insert(0, str(REPO_ROOT))

    from embedded.bootstrap import ensure_embedded_database

    ensure_embedded_database(stop_at_exit=True)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    report(measure(args, worker_env=os.environ, worker_log=HOME / "worker.log"))


def measure(
    args: argparse.Namespace, *, worker_env: Mapping[str, str], worker_log: Path
) -> dict[str, Any]:
    """Ingest the corpus through a real worker started with ``worker_env`` (which must
    reach this process's database and broker), then encode the same texts raw."""
    from django.core.files import File

    from ingest.services.uploads import document_create
    from kb.embeddings.inputs import chunk_embedding_input
    from kb.embeddings.local import MINILM_MODEL_ID, MiniLMEmbedder
    from kb.embeddings.registry import get_embedder
    from kb.models import Chunk, Document
    from kb.services.accounts import account_ensure, knowledge_base_ensure

    account = account_ensure(slug="bench", name="Benchmark")
    Document.objects.filter(account=account).delete()
    kb = knowledge_base_ensure(account=account, slug="pg-manual", name="PostgreSQL manual")
    files = corpus_files(args.corpus, args.limit)
    if not files:
        raise SystemExit(f"no document Cairn reads in {args.corpus}")

    threads = max(1, (os.cpu_count() or 1) // args.concurrency)  # as `manage.py serve` does
    env = {**worker_env, "PYTHONUNBUFFERED": "1", "CAIRN_EMBEDDING_THREADS": str(threads)}
    log = worker_log.open("wb")
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config.celery_app",
            "worker",
            "--loglevel=WARNING",
            f"--concurrency={args.concurrency}",
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=REPO_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        # Warm up: the worker loads the model on its first document.
        warm = document_create(
            knowledge_base=kb,
            upload=File(open(files[0], "rb"), name=files[0].name),  # noqa: SIM115
            source=f"warmup/{time.time()}",
        ).document
        wait_settled([warm.pk], worker, worker_log)
        Document.objects.filter(pk=warm.pk).delete()

        memory = PeakRss(worker.pid)
        started = time.perf_counter()
        ids = []
        for path in files:
            with path.open("rb") as handle:
                outcome = document_create(
                    knowledge_base=kb, upload=File(handle, name=path.name), source=path.name
                )
            ids.append(outcome.document.pk)
        uploaded = time.perf_counter() - started
        wait_settled(ids, worker, worker_log)
        elapsed = time.perf_counter() - started
        peak_worker = memory.stop()
    finally:
        worker.terminate()
        worker.wait(timeout=60)
        log.close()

    ready = Document.objects.filter(pk__in=ids, status="ready").count()
    failed = list(
        Document.objects.filter(pk__in=ids, status="failed").values_list("title", "error")
    )
    chunks = list(Chunk.objects.filter(document_id__in=ids).values_list("heading_path", "text"))
    texts = [chunk_embedding_input(heading_path=h, text=t) for h, t in chunks]
    tokens = sum(Chunk.objects.filter(document_id__in=ids).values_list("token_count", flat=True))

    embedder = get_embedder(MINILM_MODEL_ID)  # the process's own (PyTorch's default threads)
    if not isinstance(embedder, MiniLMEmbedder):
        raise SystemExit(f"{MINILM_MODEL_ID} is not served by the bundled model here")
    embedder.embed(texts[:64])  # load the model outside the clock
    raw_started = time.perf_counter()
    embedder._load().encode(
        texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False
    )
    raw_elapsed = time.perf_counter() - raw_started

    import resource

    return {
        "documents": len(ids), "ready": ready, "failed": failed, "chunks": len(chunks),
        "tokens": tokens, "concurrency": args.concurrency, "threads": threads,
        "uploaded": uploaded, "elapsed": elapsed, "raw_elapsed": raw_elapsed,
        "peak_worker": peak_worker,
        "peak_self": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }  # fmt: skip


def report(m: dict[str, Any]) -> dict[str, Any]:
    """Print the table and the JSON line; return what the JSON line says."""
    documents, ready, failed, chunks, tokens = (
        m["documents"], m["ready"], m["failed"], m["chunks"], m["tokens"]
    )  # fmt: skip
    elapsed, peak_worker, peak_self = m["elapsed"], m["peak_worker"], m["peak_self"]
    pipeline_rate = chunks / elapsed
    raw_rate = chunks / m["raw_elapsed"]
    ratio = pipeline_rate / raw_rate
    rows = [
        ("documents", f"{documents} ({ready} ready, {len(failed)} failed)"),
        ("chunks", f"{chunks} ({tokens} tokens, {tokens / max(chunks, 1):.0f}/chunk)"),
        ("worker", f"{m['concurrency']} processes x {m['threads']} embedding thread(s)"),
        ("upload time", f"{m['uploaded']:.1f} s"),
        ("pipeline time", f"{elapsed:.1f} s"),
        ("pipeline documents/s", f"{documents / elapsed:.2f}"),
        ("pipeline chunks/s", f"{pipeline_rate:.1f}"),
        ("raw encode chunks/s", f"{raw_rate:.1f}"),
        ("ratio pipeline/raw", f"{ratio:.3f} (target >= {TARGET_RATIO})"),
        ("peak RSS worker", f"{peak_worker / 2**20:.0f} MiB"),
        ("peak RSS benchmark", f"{peak_self / 2**20:.0f} MiB"),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    for title, error in failed[:10]:
        print(f"failed: {title}: {error}")
    line = {
        "benchmark": "ingest",
        "documents": documents,
        "ready": ready,
        "failed": len(failed),
        "chunks": chunks,
        "tokens": tokens,
        "concurrency": m["concurrency"],
        "pipeline_seconds": round(elapsed, 2),
        "documents_per_s": round(documents / elapsed, 3),
        "chunks_per_s": round(pipeline_rate, 2),
        "raw_chunks_per_s": round(raw_rate, 2),
        "ratio": round(ratio, 4),
        "target_ratio": TARGET_RATIO,
        "met": ratio >= TARGET_RATIO,
        "peak_rss_worker_mib": round(peak_worker / 2**20),
        "peak_rss_self_mib": round(peak_self / 2**20),
    }
    print(json.dumps(line))
    return line


if __name__ == "__main__":
    main()
