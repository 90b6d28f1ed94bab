"""Ingestion throughput on a real corpus: the PostgreSQL 15 manual (HTML, ~1,170 files).

Target (issue 3): pipeline throughput >= 0.8 x raw embedding throughput on the same
chunk texts, on the 2-core machine.

What runs: a private embedded PostgreSQL (benchmarks/.cache/ingest-home), a real
Celery worker on the filesystem broker, and every file uploaded through the same
service the admin uses; the clock runs from the first upload to the last document
settled. Then, in this process, the bundled model encodes the very texts the
pipeline embedded (heading path + chunk text), best case: one call, sorted by
length by sentence-transformers. Prints a table and one JSON line.

    .venv/bin/python benchmarks/ingest.py [--limit N] [--concurrency C]
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
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
CORPUS = Path("/usr/share/doc/postgresql-doc-15/html")
HOME = REPO_ROOT / "benchmarks" / ".cache" / "ingest-home"
TARGET_RATIO = 0.8


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--limit", type=int, default=0, help="only the first N files")
    parser.add_argument("--concurrency", type=int, default=2, help="worker processes")
    args = parser.parse_args()
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

    from config.bootstrap import ensure_embedded_database

    ensure_embedded_database(stop_at_exit=True)
    import django

    django.setup()
    from django.core.files import File
    from django.core.management import call_command

    from ingest.services.uploads import document_create
    from kb.embeddings.inputs import chunk_embedding_input
    from kb.embeddings.local import MiniLMEmbedder
    from kb.models import Chunk, Document
    from kb.services.accounts import account_ensure, knowledge_base_ensure

    call_command("migrate", verbosity=0)
    account = account_ensure(slug="bench", name="Benchmark")
    Document.objects.filter(account=account).delete()
    kb = knowledge_base_ensure(account=account, slug="pg-manual", name="PostgreSQL manual")
    files = sorted(CORPUS.glob("*.html"))
    if args.limit:
        files = files[: args.limit]

    threads = max(1, (os.cpu_count() or 1) // args.concurrency)  # as `manage.py serve` does
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "CAIRN_EMBEDDING_THREADS": str(threads)}
    log = (HOME / "worker.log").open("wb")
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
        while Document.objects.filter(pk=warm.pk, status__in=["pending", "processing"]).exists():
            time.sleep(0.2)
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
        while Document.objects.filter(pk__in=ids, status__in=["pending", "processing"]).exists():
            time.sleep(0.25)
        elapsed = time.perf_counter() - started
        peak_worker = memory.stop()
    finally:
        worker.terminate()
        worker.wait(timeout=60)

    ready = Document.objects.filter(pk__in=ids, status="ready").count()
    failed = list(
        Document.objects.filter(pk__in=ids, status="failed").values_list("title", "error")
    )
    chunks = list(Chunk.objects.filter(document_id__in=ids).values_list("heading_path", "text"))
    texts = [chunk_embedding_input(heading_path=h, text=t) for h, t in chunks]
    tokens = sum(Chunk.objects.filter(document_id__in=ids).values_list("token_count", flat=True))

    embedder = MiniLMEmbedder()
    embedder.embed(texts[:64])  # load the model outside the clock
    raw_started = time.perf_counter()
    embedder._load().encode(
        texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False
    )
    raw_elapsed = time.perf_counter() - raw_started

    import resource

    peak_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    pipeline_rate = len(chunks) / elapsed
    raw_rate = len(chunks) / raw_elapsed
    ratio = pipeline_rate / raw_rate
    rows = [
        ("documents", f"{len(ids)} ({ready} ready, {len(failed)} failed)"),
        ("chunks", f"{len(chunks)} ({tokens} tokens, {tokens / max(len(chunks), 1):.0f}/chunk)"),
        ("worker", f"{args.concurrency} processes x {threads} embedding thread(s)"),
        ("upload time", f"{uploaded:.1f} s"),
        ("pipeline time", f"{elapsed:.1f} s"),
        ("pipeline documents/s", f"{len(ids) / elapsed:.2f}"),
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
    print(
        json.dumps(
            {
                "benchmark": "ingest",
                "documents": len(ids),
                "ready": ready,
                "failed": len(failed),
                "chunks": len(chunks),
                "tokens": tokens,
                "concurrency": args.concurrency,
                "pipeline_seconds": round(elapsed, 2),
                "documents_per_s": round(len(ids) / elapsed, 3),
                "chunks_per_s": round(pipeline_rate, 2),
                "raw_chunks_per_s": round(raw_rate, 2),
                "ratio": round(ratio, 4),
                "target_ratio": TARGET_RATIO,
                "met": ratio >= TARGET_RATIO,
                "peak_rss_worker_mib": round(peak_worker / 2**20),
                "peak_rss_self_mib": round(peak_self / 2**20),
            }
        )
    )


if __name__ == "__main__":
    main()
