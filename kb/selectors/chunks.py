"""Reading chunks: nearest neighbours by embedding, always within one tenant.

The plan is chosen here, not left to PostgreSQL's planner. The planner prices a cosine
distance like any operator and does not count reading a TOASTed vector at all, so on
tables of a few thousand to tens of thousands of rows it picks a sequential scan and a
sort over every chunk (35–50 ms on SciFact's 10,880 chunks) over the HNSW index (1–9 ms
at the same nDCG), and the larger ``hnsw.ef_search`` the sooner. So:

- the searched knowledge bases hold at most ``EXACT_SCAN_MAX_CHUNKS`` chunks: an exact
  scan of their rows (HNSW switched off, the tenant btree finds them) — exact, complete
  and a few milliseconds;
- more: the HNSW index, with every other way of ordering the rows switched off for the
  statement, and pgvector's iterative scan so a tenant filter still yields ``k`` rows. If
  the iterative scan gives up before ``k`` rows (a tenant that is a tiny share of a huge
  table), the exact scan answers instead: results are never short.

Each setting is ``SET LOCAL`` in a block that is rolled back once the rows are read, so
it never outlives the statement, also inside a caller's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection, transaction

from kb.models import EMBEDDING_DIMENSION, Account, Chunk, KnowledgeBase

# Up to this many chunks in the searched knowledge bases an exact scan takes a few
# milliseconds and is exact: about 2.5 µs a chunk whose vector is TOASTed (chunks of real
# length), 0.6 µs one stored inline, on the 2-core machine; HNSW takes 1-3 ms.
EXACT_SCAN_MAX_CHUNKS = 1000

# The HNSW index is on the embedding cast to halfvec (migration 0012): the ORDER BY must
# use that very expression, or the planner cannot use the index. Distances are returned
# in full precision all the same (computed for the k rows only).
TABLE = Chunk._meta.db_table
HALFVEC = f"halfvec({EMBEDDING_DIMENSION})"
INDEXED_DISTANCE = f"({TABLE}.embedding::{HALFVEC}) <=> %s::{HALFVEC}"
EXACT_DISTANCE = f"{TABLE}.embedding <=> %s::vector"


@dataclass(frozen=True)
class NeighbourQuery:
    """One statement of the vector channel and the settings it runs under."""

    sql: str
    params: tuple[Any, ...]
    settings: tuple[tuple[str, str], ...]
    exact: bool


def _vector_text(embedding: Sequence[float]) -> str:
    return "[" + ",".join(repr(float(x)) for x in embedding) + "]"


def _more_chunks_than(account_id: int, kb_ids: list[int], limit: int) -> bool:
    """Whether the knowledge bases hold more than ``limit`` chunks (reads at most limit + 1
    entries of the tenant index)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*) FROM (SELECT 1 FROM {TABLE} "  # noqa: S608 (the model's table)
            "WHERE account_id = %s AND knowledge_base_id = ANY(%s::bigint[]) LIMIT %s) AS tenant",
            [account_id, kb_ids, limit + 1],
        )
        row = cursor.fetchone()
    return bool(row and row[0] > limit)


def neighbour_query(
    *,
    account: Account,
    knowledge_bases: Sequence[KnowledgeBase],
    embedding: Sequence[float],
    k: int,
    ef_search: int | None = None,
    exact: bool | None = None,
) -> NeighbourQuery:
    """The statement ``chunk_vector_neighbours`` runs first. ``exact`` None: decided by the
    number of chunks searched (a query, so call it inside the selector's transaction)."""
    account_id, kb_ids = account.pk, sorted({kb.pk for kb in knowledge_bases})
    if exact is None:
        exact = not _more_chunks_than(account_id, kb_ids, EXACT_SCAN_MAX_CHUNKS)
    vector = _vector_text(embedding)
    order_params: tuple[str, ...] = ()
    if exact:
        order = "distance, id"
        # HNSW is only ever an index scan; the tenant btree still serves as a bitmap scan.
        session: tuple[tuple[str, str], ...] = (("enable_indexscan", "off"),)
    else:
        order, order_params = INDEXED_DISTANCE, (vector,)
        ef = settings.CAIRN_HNSW_EF_SEARCH if ef_search is None else ef_search
        session = (
            ("hnsw.ef_search", str(max(ef, k))),
            ("hnsw.iterative_scan", "strict_order"),
            ("enable_seqscan", "off"),
            ("enable_bitmapscan", "off"),
            ("enable_sort", "off"),  # nor a btree scan and a sort: the index's order it is
        )
    # The tenant filter is part of the SQL, never applied after the fact.
    sql = (
        f"SELECT id, {EXACT_DISTANCE} AS distance FROM {TABLE} "  # noqa: S608 (constants)
        "WHERE account_id = %s AND knowledge_base_id = ANY(%s::bigint[]) "
        f"ORDER BY {order} LIMIT %s"
    )
    return NeighbourQuery(sql, (vector, account_id, kb_ids, *order_params, k), session, exact)


def _fetch(query: NeighbourQuery, *, explain: bool = False) -> list[tuple[Any, ...]]:
    """Rows of ``query`` under its settings, in a block rolled back after (it only reads):
    rolling back undoes its SET LOCALs also inside a caller's transaction."""
    with transaction.atomic(), connection.cursor() as cursor:
        for name, value in query.settings:
            cursor.execute("SELECT set_config(%s, %s, true)", [name, value])
        cursor.execute(f"EXPLAIN {query.sql}" if explain else query.sql, list(query.params))
        rows = cursor.fetchall()
        transaction.set_rollback(True)
    return rows


def chunk_vector_neighbours(
    *,
    account: Account,
    knowledge_bases: Sequence[KnowledgeBase],
    embedding: Sequence[float],
    k: int = 10,
    ef_search: int | None = None,
) -> list[tuple[int, float]]:
    """(chunk id, cosine distance) of the ``k`` chunks of ``account``'s ``knowledge_bases``
    nearest to ``embedding``, nearest first (0 = same direction); texts and vectors stay in
    the database. ``ef_search`` defaults to CAIRN_HNSW_EF_SEARCH (at least ``k``)."""
    query = neighbour_query(
        account=account, knowledge_bases=knowledge_bases, embedding=embedding, k=k,
        ef_search=ef_search,
    )  # fmt: skip
    rows = _fetch(query)
    if not query.exact and len(rows) < k:  # the iterative scan gave up: be complete
        exact = neighbour_query(
            account=account, knowledge_bases=knowledge_bases, embedding=embedding, k=k,
            exact=True,
        )  # fmt: skip
        rows = _fetch(exact)
    found = [(int(pk), float(distance)) for pk, distance in rows]
    return sorted(found, key=lambda row: (row[1], row[0]))


def chunk_vector_neighbours_plan(
    *,
    account: Account,
    knowledge_bases: Sequence[KnowledgeBase],
    embedding: Sequence[float],
    k: int,
    ef_search: int | None = None,
) -> str:
    """EXPLAIN of the statement ``chunk_vector_neighbours`` runs first, under its settings
    (for tests and diagnostics)."""
    query = neighbour_query(
        account=account, knowledge_bases=knowledge_bases, embedding=embedding, k=k,
        ef_search=ef_search,
    )  # fmt: skip
    return "\n".join(str(row[0]) for row in _fetch(query, explain=True))


def chunk_vector_search(
    *,
    account: Account,
    knowledge_bases: Sequence[KnowledgeBase],
    embedding: Sequence[float],
    k: int = 10,
    ef_search: int | None = None,
) -> list[Chunk]:
    """The chunks ``chunk_vector_neighbours`` finds, loaded, nearest first; each carries
    ``distance`` (cosine distance, 0 = same direction)."""
    neighbours = chunk_vector_neighbours(
        account=account, knowledge_bases=knowledge_bases, embedding=embedding, k=k,
        ef_search=ef_search,
    )  # fmt: skip
    rows = Chunk.objects.filter(pk__in=[pk for pk, _ in neighbours], account=account)
    by_id = {chunk.pk: chunk for chunk in rows}
    found = []
    for pk, distance in neighbours:
        if pk in by_id:
            chunk = by_id[pk]
            chunk.distance = distance  # type: ignore[attr-defined]
            found.append(chunk)
    return found


chunk_vector_search_plan = chunk_vector_neighbours_plan
