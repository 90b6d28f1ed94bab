"""What the gateway adds: latency over a direct SDK call, and cache-hit latency.

Targets (issue 5), in one process on the 2-core machine: gateway overhead <= 5 ms p50
on time to first token; exact-cache hit <= 5 ms p95; semantic-cache hit <= 20 ms p95
with the question's embedding included.

Both paths talk to the same fake OpenAI server on loopback (tests/support/fake_llm.py,
real wire protocol, streamed in chunks); the gateway path includes its breaker check
and the ledger row it writes for every call. Prints a table and one JSON line.

    .venv/bin/python benchmarks/gateway.py [--calls 200] [--wordings N]

``--calls 5 --wordings 4`` is a smoke run of a few seconds
(tests/benchmarks/test_gateway.py runs it).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
HOME = REPO_ROOT / "benchmarks" / ".cache" / "gateway-home"
FILLERS = [
    "", "So, ", "Well, ", "Hi, ", "Quick question: ", "Hello, ", "Hey, ", "OK, ", "Please, ",
    "Sorry, ", "Hi there, ", "Good morning, ", "Question: ", "Thanks, ", "Right, ", "Now, ",
]  # fmt: skip
ENDINGS = ["?", "??", " ?", "? Thanks", "? Thank you", "?!", "? please", "... ?"]


def percentiles(values: list[float]) -> tuple[float, float]:
    return float(np.percentile(values, 50)), float(np.percentile(values, 95))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=200, help="timed calls of each kind")
    parser.add_argument(
        "--wordings", type=int, default=len(FILLERS) * len(ENDINGS),
        help="new wordings tried on the semantic cache (default: every filler x ending)",
    )  # fmt: skip
    return parser.parse_args(argv)


def main() -> None:
    args = parse_args()
    sys.path.insert(0, str(REPO_ROOT))
    from benchmarks._embedded import embedded_django

    embedded_django(HOME)
    report(measure(args))


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Time both paths against one fake server in the current database."""
    import openai
    from django.core.cache import cache

    from kb.embeddings.local import MINILM_MODEL_ID
    from kb.selectors.search import query_embedding
    from kb.services.accounts import account_ensure
    from llm.answer_cache import CacheScope
    from llm.events import CompletionRequest, Message, TextDelta
    from llm.gateway import GatewayRequest, GatewayResult, LlmGateway
    from llm.models import SemanticCacheEntry
    from llm.providers.openai_chat import OpenAIChatProvider
    from llm.routing import ChainEntry, Route
    from tests.support.fake_llm import Reply, running_fake_llm

    account = account_ensure(slug="bench", name="Benchmark")
    route = Route("simple", (ChainEntry("openai", "gpt-bench"),), max_tokens=200, temperature=0.1)
    system = "Answer from the passages.\n[1] Refunds are paid within 14 days of the request."

    with running_fake_llm() as server:
        server.default = Reply(text="Refunds are paid within 14 days of the request.", chunks=8)
        client = openai.OpenAI(api_key="sk", base_url=server.openai_base_url, max_retries=0)
        gateway = LlmGateway(
            providers={"openai": OpenAIChatProvider("sk", base_url=server.openai_base_url)}
        )

        def direct() -> tuple[float, float]:
            started = time.perf_counter()
            first = None
            stream = client.chat.completions.create(
                model="gpt-bench", stream=True, stream_options={"include_usage": True},
                messages=[{"role": "system", "content": system},
                          {"role": "user", "content": "How long do refunds take?"}],
            )  # fmt: skip
            for chunk in stream:
                if first is None and chunk.choices and chunk.choices[0].delta.content:
                    first = time.perf_counter()
            end = time.perf_counter()
            return ((first or end) - started) * 1000, (end - started) * 1000

        def through_gateway(
            question: str, scope: CacheScope | None = None
        ) -> tuple[float, float, str]:
            completion = CompletionRequest(system=system, messages=(Message("user", question),))
            request = GatewayRequest(completion, route, account_id=account.pk,
                                     cache_scope=scope, question=question)  # fmt: skip
            result = GatewayResult()
            started = time.perf_counter()
            first = None
            for event in gateway.stream(request, result):
                if first is None and isinstance(event, TextDelta):
                    first = time.perf_counter()
            end = time.perf_counter()
            return ((first or end) - started) * 1000, (end - started) * 1000, result.cached

        for _ in range(min(20, args.calls)):  # warm connections, code paths, the ledger table
            direct()
            through_gateway("How long do refunds take?")
        direct_runs, gateway_runs = [], []
        for _ in range(args.calls):  # interleaved, so drift hits both alike
            direct_runs.append(direct())
            gateway_runs.append(through_gateway("How long do refunds take?")[:2])

        # Caches: one answer stored, then hits (rows of earlier runs would be hits too).
        cache.clear()
        SemanticCacheEntry.objects.filter(account=account).delete()
        scope = CacheScope(account.pk, ((1, 1),), MINILM_MODEL_ID)
        base_question = "How long do refunds take?"
        through_gateway(base_question, scope)
        exact = []
        for _ in range(args.calls):
            _, total, kind = through_gateway(base_question, scope)
            if kind != "exact":
                raise SystemExit(f"expected an exact-cache hit, got {kind!r}")
            exact.append(total)
        # Semantic: new wordings each time (their embeddings are computed inside the clock).
        base = np.array(query_embedding(MINILM_MODEL_ID, base_question))
        stem = base_question[:-1]
        variants = [
            f"{f}{stem[0].lower() + stem[1:] if f else stem}{e}" for f in FILLERS for e in ENDINGS
        ][: args.wordings]
        semantic, misses = [], 0
        for question in variants:
            _, total, kind = through_gateway(question, scope)
            if kind == "semantic":
                semantic.append(total)
            else:
                misses += 1
        similarities = [
            float(base @ np.array(query_embedding(MINILM_MODEL_ID, q))) for q in variants
        ]
    return {
        "calls": args.calls, "direct": direct_runs, "gateway": gateway_runs, "exact": exact,
        "semantic": semantic, "misses": misses, "similarities": similarities,
    }  # fmt: skip


def report(m: dict[str, Any]) -> dict[str, Any]:
    """Print the table and the JSON line; return what the JSON line says."""
    direct_runs, gateway_runs, exact = m["direct"], m["gateway"], m["exact"]
    semantic, misses, similarities = m["semantic"], m["misses"], m["similarities"]
    d_ttft, d_total = zip(*direct_runs, strict=True)
    g_ttft, g_total = zip(*gateway_runs, strict=True)
    (dt50, dt95), (gt50, gt95) = percentiles(list(d_ttft)), percentiles(list(g_ttft))
    (dT50, dT95), (gT50, gT95) = percentiles(list(d_total)), percentiles(list(g_total))
    e50, e95 = percentiles(exact)
    s50, s95 = percentiles(semantic) if semantic else (float("nan"), float("nan"))
    rows = [
        ("calls", f"{m['calls']} each, interleaved; reply of 8 streamed chunks"),
        ("direct SDK  TTFT p50/p95", f"{dt50:.2f} / {dt95:.2f} ms"),
        ("gateway     TTFT p50/p95", f"{gt50:.2f} / {gt95:.2f} ms"),
        ("overhead    TTFT p50/p95", f"{gt50 - dt50:.2f} / {gt95 - dt95:.2f} ms (target p50 <= 5)"),
        ("direct SDK  total p50/p95", f"{dT50:.2f} / {dT95:.2f} ms"),
        ("gateway     total p50/p95", f"{gT50:.2f} / {gT95:.2f} ms (includes the ledger row)"),
        ("overhead    total p50/p95", f"{gT50 - dT50:.2f} / {gT95 - dT95:.2f} ms"),
        ("exact-cache hit p50/p95", f"{e50:.2f} / {e95:.2f} ms (target p95 <= 5)"),
        ("semantic-cache hit p50/p95", f"{s50:.2f} / {s95:.2f} ms over {len(semantic)} new "
                                       f"wordings (target p95 <= 20; embedding included)"),
        ("semantic misses", f"{misses} wordings below the 0.95 threshold (answered afresh)"),
        ("semantic similarity range", f"{min(similarities):.3f} .. {max(similarities):.3f}"),
    ]  # fmt: skip
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    line = {
        "benchmark": "gateway", "calls": m["calls"],
        "ttft_overhead_p50_ms": round(gt50 - dt50, 3),
        "ttft_overhead_p95_ms": round(gt95 - dt95, 3),
        "total_overhead_p50_ms": round(gT50 - dT50, 3), "exact_hit_p95_ms": round(e95, 3),
        "semantic_hit_p95_ms": round(s95, 3), "semantic_hits": len(semantic),
        "met": {"ttft_overhead": gt50 - dt50 <= 5, "exact": e95 <= 5, "semantic": s95 <= 20},
    }  # fmt: skip
    print(json.dumps(line))
    return line


if __name__ == "__main__":
    main()
