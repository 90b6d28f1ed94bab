"""Hybrid retrieval at about 100k chunks: latency, HNSW recall, BM25 against rank_bm25.

Targets (issue 4), on the 2-core machine: hybrid search p95 <= 50 ms at 100k chunks
(query embedding excluded), HNSW recall@10 >= 0.95 against an exact scan over 200
queries, BM25 >= 20x faster than rank_bm25's get_scores on the same corpus.

Corpus: the Python 3.11 and PostgreSQL 15 manuals (Debian's python3.11-doc and
postgresql-doc-15, installed if missing), or the folders given with ``--corpus``,
parsed and chunked by Cairn's own parsers and chunker and embedded by the bundled
model; embeddings are cached in benchmarks/.cache/retrieval/ so only the first run
pays for them. The manuals give fewer than 100k chunks, so the corpus is replicated
into further knowledge bases of the same account with small vector noise (said in the
output); a corpus larger than ``--target`` (or ``--corpus-chunks``) is cut to its first
chunks.
The chunks are loaded with one COPY whose columns come from the Chunk model itself
(its defaults fill what the benchmark does not set). Queries are real headings and
first sentences of chunks. Prints a table and one JSON line.

    .venv/bin/python benchmarks/retrieval.py [--target 100000] [--queries 200] [--corpus DIR]

``--corpus kb/demo/documents --corpus-chunks 40 --target 2000 --queries 5`` is a smoke
run of a few seconds (tests/benchmarks/test_retrieval.py runs it): only 40 chunks to
embed, replicated into 50 knowledge bases.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
CACHE = REPO_ROOT / "benchmarks" / ".cache" / "retrieval"
HOME = REPO_ROOT / "benchmarks" / ".cache" / "retrieval-home"
MANUALS = {
    "postgresql-doc-15": Path("/usr/share/doc/postgresql-doc-15/html"),
    "python3.11-doc": Path("/usr/share/doc/python3.11/html"),
}
NOISE_SIGMA = 0.01


@dataclass(frozen=True)
class CorpusChunk:
    source: str  # "<corpus>/<path in it>": one Document per source and replica
    mime_type: str
    heading_path: str
    text: str
    char_start: int
    char_end: int
    page: int | None
    token_count: int


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--target", type=int, default=100_000, help="chunks searched")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--bm25-reference-queries", type=int, default=20)
    parser.add_argument(
        "--corpus-chunks", type=int, default=0,
        help="keep only the corpus's first N chunks (then replicated up to --target)",
    )  # fmt: skip
    parser.add_argument(
        "--corpus", type=Path, action="append",
        help="a folder of documents Cairn reads (repeatable); default: both manuals",
    )  # fmt: skip
    parser.add_argument(
        "--unit-vectors", choices=("stored", "cold"), default="stored",
        help="stored: the units' vectors in the table, as ingestion leaves them (the "
        "default); cold: an empty table, every search embeds what it has not seen",
    )  # fmt: skip
    return parser.parse_args(argv)


def corpora_of(args: argparse.Namespace) -> dict[str, Path]:
    if not args.corpus:
        return MANUALS
    return {_shown(path.resolve()): path.resolve() for path in args.corpus}


def _shown(path: Path) -> str:
    """``path`` relative to the repository when it is inside it (kb/demo/documents)."""
    try:
        return path.relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return str(path)


def ensure_manuals() -> None:
    missing = [pkg for pkg, path in MANUALS.items() if not any(path.glob("*.html"))]
    if not missing:
        return
    print(f"installing {', '.join(missing)}…", flush=True)
    apt = ["apt-get"] if os.geteuid() == 0 else ["sudo", "apt-get"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run([*apt, "update", "-qq"], check=True)
    subprocess.run([*apt, "install", "-y", "-qq", *missing], check=True, env=env)


def chunk_corpus(corpora: dict[str, Path], limit: int) -> list[CorpusChunk]:
    """The chunks of every document of ``corpora``, in path order, at most ``limit``:
    of the manuals, their HTML pages (as always); of other folders, every file whose
    extension Cairn accepts."""
    from ingest.chunking import chunk_document
    from ingest.filetypes import BY_EXTENSION, HTML
    from ingest.parsing.base import ParseError
    from ingest.parsing.registry import parse_document

    accepted = {".html": HTML} if corpora is MANUALS else BY_EXTENSION
    rows: list[CorpusChunk] = []
    for name, root in corpora.items():
        for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in accepted):
            if "_sources" in path.parts or "_static" in path.parts or not path.is_file():
                continue
            file_type = accepted[path.suffix.lower()]
            try:
                with path.open("rb") as handle:
                    parsed = parse_document(handle, file_type=file_type.key)
            except ParseError:
                continue
            source = f"{name}/{path.relative_to(root).as_posix()}"
            for draft in chunk_document(parsed):
                rows.append(CorpusChunk(
                    source, file_type.mime_type, draft.heading_path, draft.text,
                    draft.char_start, draft.char_end, draft.page, draft.token_count,
                ))  # fmt: skip
            if len(rows) >= limit:
                return rows[:limit]
    return rows


def embeddings_for(texts: list[str]) -> np.ndarray:
    from kb.embeddings.local import MINILM_MODEL_ID
    from kb.embeddings.registry import get_embedder

    digest = hashlib.sha256("\x00".join(texts).encode()).hexdigest()[:16]
    path = CACHE / f"embeddings-{digest}.npy"
    if path.exists():
        return np.load(path)
    print(f"embedding {len(texts)} chunks once (cached in {path})…", flush=True)
    embedder = get_embedder(MINILM_MODEL_ID)  # the process's own: queries reuse its model
    parts = []
    started = time.perf_counter()
    for start in range(0, len(texts), 2048):
        parts.append(embedder.embed(texts[start : start + 2048]))
        done = start + len(parts[-1])
        rate = done / (time.perf_counter() - started)
        print(f"  {done}/{len(texts)} ({rate:.0f}/s)", flush=True)
    vectors = np.concatenate(parts).astype(np.float32)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


def vector_literal(vector: np.ndarray) -> str:
    return "[" + ",".join(f"{x:.6f}" for x in vector.tolist()) + "]"


def copy_into_table(model: Any, objects: Iterable[Any]) -> None:
    """Write unsaved ``objects`` of ``model`` with one COPY, every column filled as
    ``save()`` would fill it: the columns are the model's concrete fields (not the
    primary key, not generated ones), each value what the field's ``pre_save`` and
    ``get_db_prep_save`` make of it, so defaults and ``auto_now_add`` apply. A column
    added to the model later is loaded with its default instead of breaking the COPY."""
    from django.db import connection

    fields = [
        field
        for field in model._meta.concrete_fields
        if not field.primary_key and not getattr(field, "generated", False)
    ]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(field.column) for field in fields)
    statement = f"COPY {quote(model._meta.db_table)} ({columns}) FROM STDIN"
    with connection.cursor() as cursor, cursor.copy(statement) as copy:
        for obj in objects:
            copy.write_row(
                [field.get_db_prep_save(field.pre_save(obj, True), connection) for field in fields]
            )


def load_database(rows: list[CorpusChunk], vectors: np.ndarray, replicas: int):
    """One account, ``replicas`` knowledge bases; returns (account, knowledge bases)."""
    from django.db import connection

    from kb.models import Account, Chunk, Document
    from kb.services.accounts import account_ensure, knowledge_base_ensure

    Account.objects.filter(slug="bench").delete()
    account = account_ensure(slug="bench", name="Benchmark")
    rng = np.random.default_rng(11)
    knowledge_bases = []
    with connection.cursor() as cursor:
        cursor.execute("DROP INDEX IF EXISTS kb_chunk_embedding_hnsw")
    sources = sorted({(row.source, row.mime_type) for row in rows})
    for replica in range(replicas):
        kb = knowledge_base_ensure(
            account=account, slug=f"manuals-{replica}", name=f"Manuals {replica}"
        )
        knowledge_bases.append(kb)
        documents = Document.objects.bulk_create(
            Document(
                account=account, knowledge_base=kb, title=s, source=s, original_filename=s,
                file=f"bench/{s}", mime_type=mime_type, status="ready",
                content_hash=hashlib.sha256(f"{replica}{s}".encode()).hexdigest(),
            )
            for s, mime_type in sources
        )  # fmt: skip
        document_of = {d.source: d.pk for d in documents}
        noisy = vectors
        if replica:
            noisy = vectors + rng.normal(0, NOISE_SIGMA, vectors.shape).astype(np.float32)
            noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
        copy_into_table(Chunk, (
            Chunk(
                document_id=document_of[row.source], account_id=account.pk,
                knowledge_base_id=kb.pk, document_version=1, ordinal=i, text=row.text,
                heading_path=row.heading_path, char_start=row.char_start,
                char_end=row.char_end, page=row.page, token_count=row.token_count,
                embedding=noisy[i],
            )
            for i, row in enumerate(rows)
        ))  # fmt: skip
        print(f"  loaded replica {replica + 1}/{replicas}", flush=True)
    started = time.perf_counter()
    with connection.cursor() as cursor:
        # Check the deferred foreign keys now: inside a transaction (the smoke test's)
        # CREATE INDEX refuses a table with pending trigger events.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("SET maintenance_work_mem = '2GB'")
        cursor.execute("SET max_parallel_maintenance_workers = 1")
        cursor.execute(
            "CREATE INDEX kb_chunk_embedding_hnsw ON kb_chunk USING hnsw "
            "(embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64)"
        )
        cursor.execute("ANALYZE kb_chunk")
    print(f"  HNSW index built in {time.perf_counter() - started:.0f} s", flush=True)
    loaded = Chunk.objects.filter(account=account).count()
    if loaded != len(rows) * replicas:
        raise SystemExit(f"loaded {loaded} chunks, expected {len(rows) * replicas}")
    return account, knowledge_bases


def units_store(rows: list[CorpusChunk], knowledge_bases: list[Any]) -> float:
    """Store every chunk's unit vectors as ingestion's task does (kb.services.units), the
    vectors computed once for all replicas (and cached like the chunks'); then forget
    them in memory, so searches start as a new web process does. Returns seconds."""
    from kb.embeddings.local import MINILM_MODEL_ID
    from kb.embeddings.texts import texts_forget, texts_remember
    from kb.services.units import knowledge_base_units_embed
    from kb.units import chunk_units

    texts = sorted(
        {
            unit.semantic_text
            for row in rows
            for unit in chunk_units(row.text, title=row.source, heading_path=row.heading_path)
        }
    )
    texts_remember(MINILM_MODEL_ID, texts, embeddings_for(texts))
    started = time.perf_counter()
    for kb in knowledge_bases:
        knowledge_base_units_embed(knowledge_base_id=kb.pk)
    seconds = time.perf_counter() - started
    texts_forget()
    print(f"  {len(texts)} unit vectors stored per knowledge base in {seconds:.0f} s", flush=True)
    return seconds


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Load the corpus into the current database and take every figure of the report."""
    import psutil
    from django.conf import settings
    from django.db import connection, transaction
    from rank_bm25 import BM25Okapi

    from kb.embeddings.inputs import chunk_embedding_input
    from kb.search.bm25 import Bm25Index
    from kb.search.keyword import keyword_indexes, query_terms
    from kb.search.tokenize import stop_words_for, tokenize
    from kb.selectors.search import chunk_search, query_embedding

    corpora = corpora_of(args)
    rows = chunk_corpus(corpora, min(args.target, args.corpus_chunks or args.target))
    if not rows:
        raise SystemExit(f"no document Cairn reads in {', '.join(map(str, corpora.values()))}")
    texts = [chunk_embedding_input(heading_path=r.heading_path, text=r.text) for r in rows]
    vectors = embeddings_for(texts)
    replicas = max(1, math.ceil(args.target / len(rows)))
    account, knowledge_bases = load_database(rows, vectors, replicas)
    total = len(rows) * replicas
    from kb.embeddings.texts import texts_forget

    texts_forget()
    units_seconds = units_store(rows, knowledge_bases) if args.unit_vectors == "stored" else 0.0

    rng = random.Random(5)
    picks = rng.sample(range(len(rows)), min(args.queries, len(rows)))
    queries = []
    for i in picks:  # half headings, half first sentences
        heading, text = rows[i].heading_path, rows[i].text
        use_heading = rng.random() < 0.5 and heading
        queries.append((heading.split(" > ")[-1] if use_heading else text.split(". ")[0])[:200])
    for query in queries:  # embeddings outside the clock (the target excludes them)
        query_embedding(knowledge_bases[0].embedding_model, query)

    # Warm the keyword indexes (first query builds them), then time hybrid searches.
    build_started = time.perf_counter()
    chunk_search(account=account, knowledge_bases=knowledge_bases, query=queries[0])
    bm25_build = time.perf_counter() - build_started
    latencies = []
    for query in queries:
        started = time.perf_counter()
        chunk_search(account=account, knowledge_bases=knowledge_bases, query=query, k=10)
        latencies.append((time.perf_counter() - started) * 1000)

    # HNSW recall@10 against an exact scan, same tenant filter.
    ef_search = settings.CAIRN_HNSW_EF_SEARCH
    kb_ids = [kb.pk for kb in knowledge_bases]
    recalls = []
    sql = ("SELECT id FROM kb_chunk WHERE account_id = %s AND knowledge_base_id = ANY(%s) "
           "ORDER BY embedding <=> %s::vector LIMIT 10")  # fmt: skip
    for query in queries:
        literal = vector_literal(
            np.array(query_embedding(knowledge_bases[0].embedding_model, query))
        )
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT set_config('hnsw.ef_search', %s, true)", [str(ef_search)])
            cursor.execute("SET LOCAL hnsw.iterative_scan = strict_order")
            cursor.execute(sql, [account.pk, kb_ids, literal])
            approximate = {r[0] for r in cursor.fetchall()}
            cursor.execute("SET LOCAL enable_indexscan = off")
            cursor.execute(sql, [account.pk, kb_ids, literal])
            exact = {r[0] for r in cursor.fetchall()}
        recalls.append(len(approximate & exact) / max(len(exact), 1))

    # BM25: our index against rank_bm25 on the same corpus (all replicas, same tokens).
    stop = stop_words_for("english")
    corpus = [tokenize(text, stop_words=stop) for text in texts] * replicas
    ours = Bm25Index()
    ours.add(enumerate(corpus))
    reference = BM25Okapi(corpus)
    sample = [query_terms(q) for q in queries[: args.bm25_reference_queries]]
    started = time.perf_counter()
    for terms in sample:
        reference.get_scores(terms)
    reference_ms = (time.perf_counter() - started) * 1000 / len(sample)
    started = time.perf_counter()
    repeats = 10
    for _ in range(repeats):
        for terms in sample:
            ours.top(terms, 50)
    ours_ms = (time.perf_counter() - started) * 1000 / (len(sample) * repeats)
    worst = 0.0
    for terms in sample[:3]:
        ours_scores = ours.scores(terms)
        dense = np.array([ours_scores.get(i, 0.0) for i in range(len(corpus))])
        worst = max(worst, float(np.max(np.abs(dense - reference.get_scores(terms)))))
    del reference
    return {
        "corpus": ", ".join(corpora), "rows": len(rows), "pages": len({r.source for r in rows}),
        "replicas": replicas, "total": total, "queries": len(queries), "latencies": latencies,
        "ef_search": ef_search, "recall": float(np.mean(recalls)), "ours_ms": ours_ms,
        "reference_ms": reference_ms, "worst": worst, "bm25_build": bm25_build,
        "postings": sum(e.index.postings_count for e in keyword_indexes._indexes.values()),
        "rss": psutil.Process().memory_info().rss, "unit_vectors": args.unit_vectors,
        "units_seconds": units_seconds,
    }  # fmt: skip


def report(m: dict[str, Any]) -> dict[str, Any]:
    """Print the table and the JSON line; return what the JSON line says."""
    p50, p95, p99 = (float(np.percentile(m["latencies"], q)) for q in (50, 95, 99))
    recall, ours_ms, reference_ms, total = m["recall"], m["ours_ms"], m["reference_ms"], m["total"]
    table = [
        ("corpus", f"{m['rows']} chunks from {m['pages']} pages of {m['corpus']}"),
        ("searched", f"{total} chunks ({m['replicas']} knowledge bases: the corpus replicated, "
                     f"vector noise sigma {NOISE_SIGMA})"),
        ("queries", f"{m['queries']} (headings and first sentences)"),
        ("unit vectors", "stored in the table (as ingestion leaves them), none in memory"
                         if m["unit_vectors"] == "stored" else "none stored (cold table)"),
        ("hybrid latency p50/p95/p99", f"{p50:.1f} / {p95:.1f} / {p99:.1f} ms (target p95 <= 50)"),
        (f"HNSW recall@10 (ef_search {m['ef_search']})", f"{recall:.3f} (target >= 0.95)"),
        ("BM25 query (ours)", f"{ours_ms:.2f} ms"),
        ("BM25 query (rank_bm25 get_scores)", f"{reference_ms:.1f} ms"),
        ("BM25 speed-up", f"{reference_ms / ours_ms:.0f}x (target >= 20x); "
                          f"max |diff| {m['worst']:.1e}"),
        ("keyword index build (first query)", f"{m['bm25_build']:.1f} s for {total} chunks"),
        ("keyword postings in memory", f"{m['postings']}"),
        ("process RSS after all", f"{m['rss'] / 2**20:.0f} MiB"),
    ]  # fmt: skip
    width = max(len(name) for name, _ in table)
    for name, value in table:
        print(f"{name:<{width}}  {value}")
    line = {
        "benchmark": "retrieval", "chunks": total, "corpus_chunks": m["rows"],
        "replicas": m["replicas"], "queries": m["queries"], "hybrid_p50_ms": round(p50, 2),
        "hybrid_p95_ms": round(p95, 2), "hybrid_p99_ms": round(p99, 2),
        "hnsw_recall_at_10": round(recall, 4), "bm25_ms": round(ours_ms, 3),
        "rank_bm25_ms": round(reference_ms, 2), "bm25_speedup": round(reference_ms / ours_ms, 1),
        "unit_vectors": m["unit_vectors"],
        "bm25_max_abs_diff": m["worst"], "rss_mib": round(m["rss"] / 2**20),
        "met": {"p95": p95 <= 50, "recall": recall >= 0.95, "bm25": reference_ms / ours_ms >= 20},
    }  # fmt: skip
    print(json.dumps(line))
    return line


def main() -> None:
    args = parse_args()
    if not args.corpus:
        ensure_manuals()
    os.environ.update({"CAIRN_HOME": str(HOME), "DJANGO_SETTINGS_MODULE": "config.settings",
                       "CAIRN_LOG_LEVEL": "WARNING"})  # fmt: skip
    for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"):
        os.environ.pop(name, None)
    sys.path.insert(0, str(REPO_ROOT))
    HOME.mkdir(parents=True, exist_ok=True)
    from config.bootstrap import ensure_embedded_database

    ensure_embedded_database(stop_at_exit=True)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    report(measure(args))


if __name__ == "__main__":
    main()
