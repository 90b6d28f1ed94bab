"""HNSW index variants at scale: full-precision ``vector`` against a ``halfvec`` expression
index, and the graph parameters (m, ef_construction), with the tenant filter.

Question (issue 17, item 2): does storing the index as ``halfvec`` (pgvector >= 0.7;
2 bytes a dimension instead of 4) keep recall@10 while halving the index, and which
m/ef_construction and ef_search keep recall@10 >= 0.95 under the tenant filter?

Corpus: the SQuAD 2.0 articles of tests/data/squad2_dev, parsed and chunked by Cairn's own
parser and chunker (small chunks, ``--chunk-tokens``, for more distinct vectors) and
embedded by the bundled model; embeddings are cached in benchmarks/.cache/halfvec/. The
chunks are replicated into knowledge bases of two accounts, each replica's vectors spread
(``spread``: moved part of the way towards another chunk's, plus noise sigma 0.01) so that
every row is a point of its own: the searched tenant holds ``--tenant-share``
of the rows, another account the rest, so every search filters by tenant in SQL.
Queries are the set's questions (not in the corpus), embedded by the same model.

For each variant the index is built alone on the table (so the planner has no other),
and for each ef_search: recall@10 against an exact scan of the tenant's rows in full
precision, latency p50/p95 of the query (ids and distances, LIMIT 10, iterative scan
strict_order as the selector runs it), index size (pg_relation_size) and build time.
Prints a table and one JSON line.

    .venv/bin/python benchmarks/halfvec.py [--chunks 100000] [--queries 200]

``--chunks 2000 --corpus-chunks 40 --queries 5 --ef-search 40`` is a smoke run of a few
seconds (tests/benchmarks/test_halfvec.py).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA = REPO_ROOT / "tests" / "data" / "squad2_dev"
CACHE = REPO_ROOT / "benchmarks" / ".cache" / "halfvec"
HOME = REPO_ROOT / "benchmarks" / ".cache" / "halfvec-home"
NOISE_SIGMA = 0.01
SEARCHED, OTHER = "halfvec-bench", "halfvec-other"
INDEX = "bench_chunk_embedding_variant"


@dataclass(frozen=True)
class Variant:
    storage: str  # "vector": the column itself; "halfvec": an expression index on its cast
    m: int
    ef_construction: int

    @property
    def name(self) -> str:
        return f"{self.storage} m={self.m} efc={self.ef_construction}"

    @property
    def expression(self) -> str:
        from kb.models import EMBEDDING_DIMENSION

        if self.storage == "halfvec":
            return f"(embedding::halfvec({EMBEDDING_DIMENSION}))"
        return "embedding"

    @property
    def query_type(self) -> str:
        from kb.models import EMBEDDING_DIMENSION

        return f"{self.storage}({EMBEDDING_DIMENSION})"


def variants_of(text: str) -> list[Variant]:
    """``vector:16:64,halfvec:16:64`` → the variants."""
    out = []
    for part in text.split(","):
        storage, m, efc = part.strip().split(":")
        if storage not in ("vector", "halfvec"):
            raise argparse.ArgumentTypeError(f"storage must be vector or halfvec, not {storage}")
        out.append(Variant(storage, int(m), int(efc)))
    return out


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chunks", type=int, default=100_000, help="rows in the table")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--chunk-tokens", type=int, default=64, help="chunker's max_tokens")
    parser.add_argument(
        "--corpus-chunks", type=int, default=0, help="keep only the first N corpus chunks"
    )
    parser.add_argument(
        "--tenant-share", type=float, default=0.5,
        help="share of the rows the searched tenant holds",
    )  # fmt: skip
    parser.add_argument(
        "--variants", type=variants_of,
        default=variants_of("vector:16:64,halfvec:16:64,vector:24:100,halfvec:24:100"),
        help="storage:m:ef_construction, comma-separated",
    )  # fmt: skip
    parser.add_argument(
        "--ef-search", type=lambda s: [int(x) for x in s.split(",")], default=[40, 64, 100, 200]
    )
    return parser.parse_args(argv)


def corpus_texts(chunk_tokens: int, limit: int) -> list[str]:
    """What Cairn embeds for each chunk of the articles, in file order, at most ``limit``."""
    from ingest.chunking import ChunkingOptions, chunk_document
    from ingest.parsing.registry import parse_document
    from kb.embeddings.inputs import chunk_embedding_input

    options = ChunkingOptions(max_tokens=chunk_tokens, overlap_tokens=min(16, chunk_tokens // 4))
    texts: list[str] = []
    for path in sorted((DATA / "docs").glob("*.md")):
        with path.open("rb") as handle:
            parsed = parse_document(handle, file_type="md")
        for draft in chunk_document(parsed, options=options):
            texts.append(chunk_embedding_input(heading_path=draft.heading_path, text=draft.text))
    return texts[:limit] if limit else texts


def questions(n: int) -> list[str]:
    rows = [json.loads(line) for line in (DATA / "questions.jsonl").read_text().splitlines()]
    return random.Random(5).sample([row["question"] for row in rows], min(n, len(rows)))


def embed(texts: list[str]) -> np.ndarray:
    from kb.embeddings.local import MINILM_MODEL_ID
    from kb.embeddings.registry import get_embedder

    digest = hashlib.sha256("\x00".join(texts).encode()).hexdigest()[:16]
    path = CACHE / f"embeddings-{digest}.npy"
    if path.exists():
        return np.load(path)
    print(f"embedding {len(texts)} texts once (cached in {path})…", flush=True)
    vectors = np.asarray(get_embedder(MINILM_MODEL_ID).embed(texts), dtype=np.float32)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


def literal(vector: np.ndarray) -> str:
    return "[" + ",".join(f"{x:.6f}" for x in vector.tolist()) + "]"


def spread(vectors: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A replica whose every vector is a point of its own: the chunk's vector moved part of
    the way (0-60 %) towards another chunk's, plus noise. Noisy copies alone (what
    benchmarks/retrieval.py makes) put dozens of near-ties at every query's top ranks at
    this scale, and a set recall@10 then measures which of the ties came first."""
    partners = vectors[rng.permutation(len(vectors))]
    weights = rng.uniform(0.0, 0.6, size=(len(vectors), 1)).astype(np.float32)
    mixed = vectors + weights * partners
    mixed += rng.normal(0, NOISE_SIGMA, vectors.shape).astype(np.float32)
    return mixed / np.linalg.norm(mixed, axis=1, keepdims=True)


def drop_hnsw_indexes() -> list[str]:
    """Drop every HNSW index on kb_chunk (the migrations' too): each variant is measured
    alone. Returns their names."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'kb_chunk' "
            "AND indexdef ILIKE '%% USING hnsw %%'"
        )
        names = [row[0] for row in cursor.fetchall()]
        for name in names:
            cursor.execute(f'DROP INDEX "{name}"')
    return names


def load(
    texts: list[str], vectors: np.ndarray, total: int, tenant_share: float
) -> tuple[Any, list[int]]:
    """``total`` rows: the corpus replicated with noise into one knowledge base per replica,
    the first ``tenant_share`` of them in the searched account. Returns (searched account,
    its knowledge base ids)."""
    from django.db import connection

    from benchmarks.retrieval import copy_into_table
    from kb.models import Account, Chunk, Document
    from kb.services.accounts import account_ensure, knowledge_base_ensure

    Account.objects.filter(slug__in=[SEARCHED, OTHER]).delete()
    searched = account_ensure(slug=SEARCHED, name="halfvec benchmark")
    other = account_ensure(slug=OTHER, name="halfvec benchmark, another tenant")
    replicas = max(2, math.ceil(total / len(texts)))
    mine = max(1, min(replicas - 1, round(replicas * tenant_share)))
    rng = np.random.default_rng(11)
    kb_ids = []
    left = total
    for replica in range(replicas):
        account = searched if replica < mine else other
        kb = knowledge_base_ensure(account=account, slug=f"replica-{replica}", name=f"R{replica}")
        if account is searched:
            kb_ids.append(kb.pk)
        document = Document.objects.create(
            account=account, knowledge_base=kb, title="SQuAD", source="squad",
            original_filename="squad.md", file="bench/squad.md", mime_type="text/markdown",
            status="ready", content_hash=hashlib.sha256(f"{replica}".encode()).hexdigest(),
        )  # fmt: skip
        noisy = spread(vectors, rng) if replica else vectors
        n = min(len(texts), left)
        left -= n
        copy_into_table(Chunk, (
            Chunk(
                document_id=document.pk, account_id=account.pk, knowledge_base_id=kb.pk,
                document_version=1, ordinal=i, text=texts[i], char_start=0,
                char_end=len(texts[i]), token_count=1, embedding=noisy[i],
            )
            for i in range(n)
        ))  # fmt: skip
    with connection.cursor() as cursor:
        # Inside a transaction (the smoke test's), CREATE INDEX refuses pending trigger events.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("ANALYZE kb_chunk")
    return searched, kb_ids


def exact_neighbours(account_id: int, kb_ids: list[int], query: np.ndarray) -> list[int]:
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_indexscan = off")
        cursor.execute(
            "SELECT id FROM kb_chunk WHERE account_id = %s AND knowledge_base_id = ANY(%s) "
            "ORDER BY embedding <=> %s::vector LIMIT 10",
            [account_id, kb_ids, literal(query)],
        )
        return [row[0] for row in cursor.fetchall()]


def measure_variant(
    variant: Variant, account_id: int, kb_ids: list[int], queries: np.ndarray,
    truth: list[list[int]], ef_searches: list[int],
) -> list[dict[str, Any]]:  # fmt: skip
    from django.db import connection, transaction

    with connection.cursor() as cursor:
        cursor.execute("SET maintenance_work_mem = '1GB'")
        cursor.execute("SET max_parallel_maintenance_workers = 1")
        started = time.perf_counter()
        cursor.execute(
            f"CREATE INDEX {INDEX} ON kb_chunk USING hnsw ({variant.expression} "
            f"{variant.storage}_cosine_ops) WITH (m = {variant.m}, "
            f"ef_construction = {variant.ef_construction})"
        )
        build = time.perf_counter() - started
        cursor.execute("ANALYZE kb_chunk")
        cursor.execute("SELECT pg_relation_size(%s)", [INDEX])
        size = cursor.fetchone()[0]
    distance = f"{variant.expression} <=> %s::{variant.query_type}"
    sql = (
        f"SELECT id, {distance} AS distance FROM kb_chunk "  # noqa: S608 (constants)
        "WHERE account_id = %s AND knowledge_base_id = ANY(%s) ORDER BY distance LIMIT 10"
    )
    rows = []
    for ef in ef_searches:
        recalls: list[float] = []
        latencies: list[float] = []
        plans: set[bool] = set()
        for query, exact in zip(queries, truth, strict=True):
            params: list[Any] = [literal(query), account_id, kb_ids]
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("SELECT set_config('hnsw.ef_search', %s, true)", [str(ef)])
                cursor.execute("SET LOCAL hnsw.iterative_scan = strict_order")
                cursor.execute("SET LOCAL enable_seqscan = off")
                cursor.execute("SET LOCAL enable_bitmapscan = off")
                cursor.execute("SET LOCAL enable_sort = off")
                if not plans:
                    cursor.execute(f"EXPLAIN {sql}", params)
                    plans.add(INDEX in "\n".join(row[0] for row in cursor.fetchall()))
                started = time.perf_counter()
                cursor.execute(sql, params)
                found = [row[0] for row in cursor.fetchall()]
                latencies.append((time.perf_counter() - started) * 1000)
            recalls.append(len(set(found) & set(exact)) / max(len(exact), 1))
        rows.append({
            "variant": variant.name, "storage": variant.storage, "m": variant.m,
            "ef_construction": variant.ef_construction, "ef_search": ef,
            "build_s": round(build, 1), "index_mib": round(size / 2**20, 1),
            "recall_at_10": round(float(np.mean(recalls)), 4),
            "p50_ms": round(float(np.percentile(latencies, 50)), 2),
            "p95_ms": round(float(np.percentile(latencies, 95)), 2),
            "uses_index": plans == {True},
        })  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(f"DROP INDEX {INDEX}")
    return rows


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Load the corpus into the current database and measure every variant."""
    from django.db import connection

    texts = corpus_texts(args.chunk_tokens, args.corpus_chunks)
    vectors = embed(texts)
    asked = questions(args.queries)
    queries = embed(asked)
    dropped = drop_hnsw_indexes()
    started = time.perf_counter()
    account, kb_ids = load(texts, vectors, args.chunks, args.tenant_share)
    print(f"  loaded {args.chunks} rows in {time.perf_counter() - started:.0f} s", flush=True)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM kb_chunk WHERE account_id = %s", [account.pk])
        searched = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM kb_chunk")
        rows_in_table = cursor.fetchone()[0]
    truth = [exact_neighbours(account.pk, kb_ids, q) for q in queries]
    results = []
    for variant in args.variants:
        results.extend(measure_variant(variant, account.pk, kb_ids, queries, truth, args.ef_search))
        print(f"  measured {variant.name}", flush=True)
    return {
        "chunks": rows_in_table, "searched": searched, "distinct": len(texts),
        "queries": len(asked), "results": results, "dropped": dropped,
    }  # fmt: skip


def halfvec_verdict(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Per (m, ef_construction, ef_search): does halfvec keep recall (>= vector's - 0.005)?
    A variant listed twice is built twice (HNSW graphs differ from build to build): its
    recall is the mean of the builds."""
    recalls: dict[tuple[str, int, int, int], list[float]] = {}
    sizes: dict[tuple[str, int, int], float] = {}
    for r in results:
        key = (r["storage"], r["m"], r["ef_construction"], r["ef_search"])
        recalls.setdefault(key, []).append(r["recall_at_10"])
        sizes[key[:3]] = r["index_mib"]
    verdicts = []
    for (storage, m, efc, ef), values in recalls.items():
        full = recalls.get(("vector", m, efc, ef))
        if storage != "halfvec" or full is None:
            continue
        verdicts.append({
            "m": m, "ef_construction": efc, "ef_search": ef, "builds": len(values),
            "halfvec_recall": round(float(np.mean(values)), 4),
            "vector_recall": round(float(np.mean(full)), 4),
            "recall_delta": round(float(np.mean(values) - np.mean(full)), 4),
            "size_ratio": round(sizes[("halfvec", m, efc)] / sizes[("vector", m, efc)], 3),
        })  # fmt: skip
    return {
        "comparisons": verdicts,
        "keeps_recall": bool(verdicts) and all(v["recall_delta"] >= -0.005 for v in verdicts),
    }


def report(m: dict[str, Any]) -> dict[str, Any]:
    """Print the table and the JSON line; return what the JSON line says."""
    print(
        f"{m['chunks']} rows ({m['distinct']} chunks, replicated and spread), "
        f"{m['searched']} in the searched tenant; {m['queries']} queries"
    )
    header = ("variant", "ef_search", "recall@10", "p50 ms", "p95 ms", "index MiB", "build s")
    print("  ".join(f"{h:>{22 if i == 0 else 9}}" for i, h in enumerate(header)))
    for r in m["results"]:
        cells = (r["variant"], r["ef_search"], f"{r['recall_at_10']:.4f}", r["p50_ms"],
                 r["p95_ms"], r["index_mib"], r["build_s"])  # fmt: skip
        print("  ".join(f"{c!s:>{22 if i == 0 else 9}}" for i, c in enumerate(cells)))
    verdict = halfvec_verdict(m["results"])
    line = {
        "benchmark": "halfvec", "chunks": m["chunks"], "searched_chunks": m["searched"],
        "distinct_chunks": m["distinct"], "queries": m["queries"], "results": m["results"],
        "halfvec": verdict,
    }  # fmt: skip
    print(json.dumps(line))
    return line


def main() -> None:
    args = parse_args()
    sys.path.insert(0, str(REPO_ROOT))
    from benchmarks._embedded import embedded_django

    embedded_django(HOME)
    report(measure(args))


if __name__ == "__main__":
    main()
