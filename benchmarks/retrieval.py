"""Hybrid retrieval as the corpus grows: 50k, 100k, 250k and 500k chunks.

Targets (issue 17), on the 2-core machine, query embedding excluded: hybrid p95 <= 50 ms
at 100k chunks; at 500k, hybrid p95 <= 100 ms, HNSW recall@10 >= 0.95 with the tenant
filter, the first query of a fresh process <= 300 ms and that process's RSS growth from
searching <= 150 MB. For each size it prints hybrid, vector and keyword latency p50/p95,
recall@10, the first query in a fresh process, RSS before and after the queries, the
keyword index's write and re-index throughput, and the database size per 100k chunks.

Corpus: the Python 3.11 and PostgreSQL 15 manuals (Debian's python3.11-doc and
postgresql-doc-15, installed if missing), or the folders given with ``--corpus``,
parsed and chunked by Cairn's own parsers and chunker and embedded by the bundled
model; embeddings are cached in benchmarks/.cache/retrieval/ so only the first run
pays for them. The manuals give about 20k chunks, so the corpus is replicated into
further knowledge bases of one account with small vector noise (said in the output);
a corpus larger than the first size (or ``--corpus-chunks``) is cut to its first chunks.
Chunks are loaded with COPY (columns from the Chunk model itself, keyword columns
filled as ingestion fills them, so the database's triggers build the shared keyword
index as they do for ingestion); the HNSW index is rebuilt from the model's own
definition after each size's load, then VACUUM ANALYZE runs (as autovacuum would).
Latencies are taken in a fresh process (``--probe``) that only reads: the query
embeddings are computed before the clock starts. Queries are real headings and first
sentences of chunks. Prints a table and one JSON line.

    .venv/bin/python benchmarks/retrieval.py [--sizes 50000,100000,250000,500000]
        [--queries 200] [--corpus DIR]

``--corpus kb/demo/documents --corpus-chunks 40 --sizes 1000,2000 --queries 5`` is a
smoke run of seconds (tests/benchmarks/test_retrieval.py runs it).
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
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from kb.selectors.search import SearchMode

REPO_ROOT = Path(__file__).resolve().parent.parent
CACHE = REPO_ROOT / "benchmarks" / ".cache" / "retrieval"
HOME = REPO_ROOT / "benchmarks" / ".cache" / "retrieval-home"
MANUALS = {
    "postgresql-doc-15": Path("/usr/share/doc/postgresql-doc-15/html"),
    "python3.11-doc": Path("/usr/share/doc/python3.11/html"),
}
NOISE_SIGMA = 0.01
DEFAULT_SIZES = "50000,100000,250000,500000"
MODES: tuple[SearchMode, ...] = ("hybrid", "vector", "keyword")


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
    parser.add_argument(
        "--sizes", default=DEFAULT_SIZES, help="chunks searched, ascending, comma-separated"
    )
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--bm25-reference-queries", type=int, default=20)
    parser.add_argument(
        "--corpus-chunks", type=int, default=0,
        help="keep only the corpus's first N chunks (then replicated up to each size)",
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
    parser.add_argument("--probe", type=Path, help=argparse.SUPPRESS)  # internal: see probe()
    args = parser.parse_args(argv)
    args.size_list = sorted({int(size) for size in args.sizes.split(",") if size.strip()})
    return args


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


def _hnsw_index() -> Any:
    from kb.models import Chunk

    return next(index for index in Chunk._meta.indexes if index.name == "kb_chunk_embedding_hnsw")


def hnsw_drop() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("DROP INDEX IF EXISTS kb_chunk_embedding_hnsw")


def hnsw_build() -> float:
    """(Re)build the HNSW index exactly as the model declares it; seconds."""
    from django.db import connection

    from kb.models import Chunk

    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("SET maintenance_work_mem = '2GB'")
        cursor.execute("SET max_parallel_maintenance_workers = 1")
    with connection.schema_editor(atomic=False) as editor:
        editor.add_index(Chunk, _hnsw_index())
    return time.perf_counter() - started


def vacuum_analyze() -> None:
    """What autovacuum does soon after a bulk load: statistics for the planner and the
    visibility map that lets the keyword postings be read from their index alone."""
    from django.db import connection

    with connection.cursor() as cursor:
        for table in ("kb_chunk", "kb_keywordposting", "kb_keywordterm", "kb_keywordstats"):
            cursor.execute(f"VACUUM (ANALYZE) {table}")


def replicas_add(
    account: Any, rows: list[CorpusChunk], vectors: np.ndarray, first: int, count: int
) -> tuple[list[Any], float]:
    """Knowledge bases ``first`` .. ``first + count - 1``, each a copy of the corpus
    (vectors with noise after the first); returns them and the seconds the chunks'
    COPY took (the keyword triggers included)."""
    from kb.models import Chunk, Document
    from kb.search.keyword import chunk_keywords
    from kb.services.accounts import knowledge_base_ensure

    keywords = [chunk_keywords(heading_path=r.heading_path, text=r.text) for r in rows]
    sources = sorted({(row.source, row.mime_type) for row in rows})
    knowledge_bases, seconds = [], 0.0
    for replica in range(first, first + count):
        rng = np.random.default_rng(11 + replica)
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
        started = time.perf_counter()
        copy_into_table(Chunk, (
            Chunk(
                document_id=document_of[row.source], account_id=account.pk,
                knowledge_base_id=kb.pk, document_version=1, ordinal=i, text=row.text,
                heading_path=row.heading_path, char_start=row.char_start,
                char_end=row.char_end, page=row.page, token_count=row.token_count,
                embedding=noisy[i], **keywords[i],
            )
            for i, row in enumerate(rows)
        ))  # fmt: skip
        seconds += time.perf_counter() - started
    return knowledge_bases, seconds


def keyword_reindex_rate(knowledge_base: Any, limit: int = 5000) -> float:
    """Chunks per second re-indexed online (kb.services.keywords), on up to ``limit``
    chunks of ``knowledge_base``: their keywords are cleared first (the triggers remove
    their postings), then re-indexed in batches as `manage.py keyword_reindex` does."""
    from kb.models import Chunk
    from kb.services.keywords import keywords_reindex

    ids = list(
        Chunk.objects.filter(knowledge_base=knowledge_base)
        .order_by("pk")
        .values_list("pk", flat=True)[:limit]
    )
    Chunk.objects.filter(pk__in=ids).update(keyword_scheme="", keyword_terms=[], keyword_tfs=[])
    started = time.perf_counter()
    done = keywords_reindex(knowledge_base_ids=[knowledge_base.pk])
    return done / max(time.perf_counter() - started, 1e-9)


def recall_at_10(account: Any, knowledge_bases: list[Any], queries: list[str]) -> float:
    """The vector channel's own query (kb.selectors.chunks) against an exact scan with
    the same tenant filter."""
    from django.conf import settings
    from django.db import connection, transaction

    from kb.selectors.chunks import chunk_vector_neighbours
    from kb.selectors.search import query_embedding

    model_id = knowledge_bases[0].embedding_model
    kb_ids = [kb.pk for kb in knowledge_bases]
    sql = ("SELECT id FROM kb_chunk WHERE account_id = %s AND knowledge_base_id = ANY(%s) "
           "ORDER BY embedding <=> %s::vector LIMIT 10")  # fmt: skip
    recalls = []
    for query in queries:
        embedding = query_embedding(model_id, query)
        approximate = {
            pk
            for pk, _ in chunk_vector_neighbours(
                account=account, knowledge_bases=knowledge_bases, embedding=embedding, k=10,
                ef_search=settings.CAIRN_HNSW_EF_SEARCH,
            )
        }  # fmt: skip
        literal = "[" + ",".join(f"{x:.7f}" for x in embedding) + "]"
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_indexscan = off")
            cursor.execute("SET LOCAL enable_bitmapscan = off")
            cursor.execute(sql, [account.pk, kb_ids, literal])
            exact = {r[0] for r in cursor.fetchall()}
        recalls.append(len(approximate & exact) / max(len(exact), 1))
    return float(np.mean(recalls))


def database_sizes() -> dict[str, int]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_database_size(current_database()), "
            "pg_total_relation_size('kb_keywordposting') + "
            "pg_total_relation_size('kb_keywordterm') + pg_total_relation_size('kb_keywordstats'), "
            "pg_relation_size('kb_chunk_embedding_hnsw')"
        )
        database, keyword, hnsw = cursor.fetchone()
    return {"database": int(database), "keyword": int(keyword), "hnsw": int(hnsw)}


def probe_in_fresh_process(account: Any, knowledge_bases: list[Any], queries: list[str]) -> dict:
    """Run ``probe`` in a new Python process against the same database."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    url = f"postgres://{db['USER']}@{db['HOST'].replace('/', '%2F')}:{db['PORT']}/{db['NAME']}"
    spec = {"account": account.pk, "knowledge_bases": [kb.pk for kb in knowledge_bases],
            "queries": queries}  # fmt: skip
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(spec, handle)
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    env.update({"DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "config.settings",
                "CAIRN_LOG_LEVEL": "WARNING", "SECRET_KEY": settings.SECRET_KEY})  # fmt: skip
    try:
        done = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--probe", handle.name],
            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=3600, check=False,
        )  # fmt: skip
    finally:
        os.unlink(handle.name)
    if done.returncode:
        raise SystemExit(f"probe failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def probe(spec_path: Path) -> None:
    """In a fresh process: embed the queries (outside the clock), then time the first
    search, then every query in each mode; RSS before and after the searches."""
    import django
    import psutil

    sys.path.insert(0, str(REPO_ROOT))
    django.setup()
    from kb.models import Account, KnowledgeBase
    from kb.selectors.search import chunk_search, query_embedding

    spec = json.loads(spec_path.read_text())
    account = Account.objects.get(pk=spec["account"])
    knowledge_bases = list(KnowledgeBase.objects.filter(pk__in=spec["knowledge_bases"]))
    queries = spec["queries"]
    for query in queries:
        query_embedding(knowledge_bases[0].embedding_model, query)
    process = psutil.Process()
    rss_before = process.memory_info().rss
    started = time.perf_counter()
    chunk_search(account=account, knowledge_bases=knowledge_bases, query=queries[0], k=10)
    first_ms = (time.perf_counter() - started) * 1000
    latencies: dict[str, list[float]] = {mode: [] for mode in MODES}
    for mode in MODES:
        for query in queries:
            started = time.perf_counter()
            chunk_search(
                account=account, knowledge_bases=knowledge_bases, query=query, k=10, mode=mode
            )
            latencies[mode].append((time.perf_counter() - started) * 1000)
    print(json.dumps({"first_ms": first_ms, "latencies": latencies, "rss_before": rss_before,
                      "rss_after": process.memory_info().rss}))  # fmt: skip


def queries_of(rows: list[CorpusChunk], count: int) -> list[str]:
    rng = random.Random(5)
    queries = []
    for i in rng.sample(range(len(rows)), min(count, len(rows))):  # headings, first sentences
        heading, text = rows[i].heading_path, rows[i].text
        use_heading = rng.random() < 0.5 and heading
        queries.append((heading.split(" > ")[-1] if use_heading else text.split(". ")[0])[:200])
    return queries


def bm25_against_rank_bm25(
    account: Any, knowledge_base: Any, texts: list[str], queries: list[str]
) -> dict[str, float]:
    """One knowledge base (one copy of the corpus): our scores against rank_bm25's over
    the same tokens, and the time of a query each way."""
    from rank_bm25 import BM25Okapi

    from kb.models import Chunk
    from kb.search.keyword import keyword_search, query_terms

    ids = list(
        Chunk.objects.filter(knowledge_base=knowledge_base)
        .order_by("ordinal")
        .values_list("pk", flat=True)
    )
    reference = BM25Okapi([query_terms(text) for text in texts])
    worst, ours_ms, reference_ms = 0.0, [], []
    for query in queries:
        started = time.perf_counter()
        expected = reference.get_scores(query_terms(query))
        reference_ms.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        keyword_search(account_id=account.pk, knowledge_base_ids=[knowledge_base.pk],
                       query=query, k=50)  # fmt: skip
        ours_ms.append((time.perf_counter() - started) * 1000)
        hits = keyword_search(account_id=account.pk, knowledge_base_ids=[knowledge_base.pk],
                              query=query, k=len(ids))  # fmt: skip
        scores = {hit.chunk_id: hit.score for hit in hits}
        dense = np.array([scores.get(pk, 0.0) for pk in ids])
        worst = max(worst, float(np.max(np.abs(dense - expected))))
    return {"worst": worst, "ours_ms": float(np.mean(ours_ms)),
            "reference_ms": float(np.mean(reference_ms))}  # fmt: skip


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Load the corpus into the current database size by size; every figure of the report."""
    from kb.embeddings.inputs import chunk_embedding_input
    from kb.embeddings.texts import texts_forget
    from kb.models import Account
    from kb.selectors.search import query_embedding
    from kb.services.accounts import account_ensure
    from llm.models import LlmCall

    corpora = corpora_of(args)
    sizes = args.size_list
    rows = chunk_corpus(corpora, min(sizes[0], args.corpus_chunks or sizes[0]))
    if not rows:
        raise SystemExit(f"no document Cairn reads in {', '.join(map(str, corpora.values()))}")
    texts = [chunk_embedding_input(heading_path=r.heading_path, text=r.text) for r in rows]
    vectors = embeddings_for(texts)
    queries = queries_of(rows, args.queries)

    LlmCall.objects.filter(account__slug="bench").delete()  # a former run's embedding ledger
    Account.objects.filter(slug="bench").delete()
    account = account_ensure(slug="bench", name="Benchmark")
    knowledge_bases: list[Any] = []
    results = []
    for size in sizes:
        replicas = max(1, math.ceil(size / len(rows)))
        hnsw_drop()
        added, copy_seconds = replicas_add(
            account, rows, vectors, len(knowledge_bases), replicas - len(knowledge_bases)
        )
        knowledge_bases += added
        hnsw_seconds = hnsw_build()
        vacuum_analyze()
        print(f"  {len(rows) * replicas} chunks loaded; HNSW built in {hnsw_seconds:.0f} s",
              flush=True)  # fmt: skip
        texts_forget()
        units_seconds = units_store(rows, added) if args.unit_vectors == "stored" else 0.0
        reindex_rate = keyword_reindex_rate(added[-1]) if added else 0.0
        vacuum_analyze()
        for query in queries:
            query_embedding(knowledge_bases[0].embedding_model, query)
        recall = recall_at_10(account, knowledge_bases, queries)
        probed = probe_in_fresh_process(account, knowledge_bases, queries)
        total = len(rows) * replicas
        results.append({
            "chunks": total, "replicas": replicas, "recall": recall, **probed,
            "copy_rate": len(rows) * len(added) / max(copy_seconds, 1e-9),
            "reindex_rate": reindex_rate, "hnsw_seconds": hnsw_seconds,
            "units_seconds": units_seconds, "sizes": database_sizes(),
        })  # fmt: skip
    bm25 = bm25_against_rank_bm25(
        account, knowledge_bases[0], texts, queries[: args.bm25_reference_queries]
    )
    return {
        "corpus": ", ".join(corpora), "rows": len(rows), "pages": len({r.source for r in rows}),
        "queries": len(queries), "unit_vectors": args.unit_vectors, "results": results, **bm25,
    }  # fmt: skip


def _percentiles(values: list[float]) -> tuple[float, float]:
    return float(np.percentile(values, 50)), float(np.percentile(values, 95))


def report(m: dict[str, Any]) -> dict[str, Any]:
    """Print the table and the JSON line; return what the JSON line says."""
    print(f"corpus: {m['rows']} chunks from {m['pages']} pages of {m['corpus']}, replicated "
          f"into knowledge bases of one account with vector noise sigma {NOISE_SIGMA}; "
          f"{m['queries']} queries (headings and first sentences); unit vectors "
          f"{m['unit_vectors']}; latencies in a fresh process, query embedding "
          "excluded")  # fmt: skip
    header = ("chunks", "hybrid p50/p95", "vector p50/p95", "keyword p50/p95", "recall@10",
              "first query", "RSS before→after", "keyword write", "re-index", "DB/100k",
              "keyword/100k")  # fmt: skip
    table = [header]
    sizes = []
    for r in m["results"]:
        p = {mode: _percentiles(r["latencies"][mode]) for mode in MODES}
        per_100k = 100_000 / r["chunks"]
        line = {
            "chunks": r["chunks"], "replicas": r["replicas"],
            **{f"{mode}_p50_ms": round(p[mode][0], 2) for mode in MODES},
            **{f"{mode}_p95_ms": round(p[mode][1], 2) for mode in MODES},
            "hnsw_recall_at_10": round(r["recall"], 4), "first_query_ms": round(r["first_ms"], 1),
            "rss_before_mib": round(r["rss_before"] / 2**20),
            "rss_after_mib": round(r["rss_after"] / 2**20),
            "rss_growth_mib": round((r["rss_after"] - r["rss_before"]) / 2**20, 1),
            "keyword_write_chunks_per_s": round(r["copy_rate"]),
            "keyword_reindex_chunks_per_s": round(r["reindex_rate"]),
            "hnsw_build_s": round(r["hnsw_seconds"], 1),
            "database_mib_per_100k": round(r["sizes"]["database"] * per_100k / 2**20),
            "keyword_index_mib_per_100k": round(r["sizes"]["keyword"] * per_100k / 2**20),
            "hnsw_index_mib_per_100k": round(r["sizes"]["hnsw"] * per_100k / 2**20),
        }  # fmt: skip
        sizes.append(line)
        table.append((
            f"{r['chunks']}", "{:.1f} / {:.1f} ms".format(*p["hybrid"]),
            "{:.1f} / {:.1f} ms".format(*p["vector"]), "{:.1f} / {:.1f} ms".format(*p["keyword"]),
            f"{r['recall']:.3f}", f"{r['first_ms']:.0f} ms",
            f"{line['rss_before_mib']}→{line['rss_after_mib']} MiB",
            f"{line['keyword_write_chunks_per_s']}/s", f"{line['keyword_reindex_chunks_per_s']}/s",
            f"{line['database_mib_per_100k']} MiB", f"{line['keyword_index_mib_per_100k']} MiB",
        ))  # fmt: skip
    widths = [max(len(str(row[i])) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(f"{cell:<{widths[i]}}" for i, cell in enumerate(row)))
    speedup = m["reference_ms"] / max(m["ours_ms"], 1e-9)
    print(f"BM25 on one copy of the corpus: ours {m['ours_ms']:.2f} ms (SQL, best 50), "
          f"rank_bm25 get_scores {m['reference_ms']:.1f} ms ({speedup:.0f}x); "
          f"max |score difference| {m['worst']:.1e}")  # fmt: skip
    by_size = {line["chunks"]: line for line in sizes}
    at_100k = next((by_size[c] for c in sorted(by_size) if c >= 100_000), None)
    at_500k = next((by_size[c] for c in sorted(by_size) if c >= 500_000), None)
    met: dict[str, bool | None] = {
        "hybrid_p95_100k": None if at_100k is None else at_100k["hybrid_p95_ms"] <= 50,
        "hybrid_p95_500k": None if at_500k is None else at_500k["hybrid_p95_ms"] <= 100,
        "recall_500k": None if at_500k is None else at_500k["hnsw_recall_at_10"] >= 0.95,
        "first_query_500k": None if at_500k is None else at_500k["first_query_ms"] <= 300,
        "rss_growth_500k": None if at_500k is None else at_500k["rss_growth_mib"] <= 150,
        "bm25_equal": m["worst"] < 1e-6,
    }
    line = {
        "benchmark": "retrieval", "corpus_chunks": m["rows"], "queries": m["queries"],
        "unit_vectors": m["unit_vectors"], "sizes": sizes,
        "bm25_ms": round(m["ours_ms"], 3), "rank_bm25_ms": round(m["reference_ms"], 2),
        "bm25_max_abs_diff": m["worst"], "met": met,
    }  # fmt: skip
    print(json.dumps(line))
    return line


def main() -> None:
    args = parse_args()
    if args.probe:
        probe(args.probe)
        return
    if not args.corpus:
        ensure_manuals()
    sys.path.insert(0, str(REPO_ROOT))
    from benchmarks._embedded import embedded_django

    embedded_django(HOME)
    report(measure(args))


if __name__ == "__main__":
    main()
