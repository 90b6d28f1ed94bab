"""First-question latency after a fresh start, against the questions after it.

The target (issue 16): the first question after `make run` is answered within 1.5 x the
median of the next ones' times (questions 2 to 10). Prepares a data folder with the demo
knowledge base once (benchmarks/.cache/cold-start-home, or --home: `manage.py serve` until
the demo documents are ready, then `manage.py units_embed`, so that no embedding the
ingestion queued is left for the worker to do while questions are timed), then starts a
fresh `manage.py serve` (what `make run` runs: worker + uvicorn) on a free loopback port,
waits for /readyz, and asks ten different demo questions through POST /api/v1/answers, one
after the other, timing each request. The semantic answer cache is emptied before the
start, so no question is answered from an earlier run. --rounds repeats the fresh start.
Prints a table per round and one JSON line each, with the load average (other work on
the machine slows every question, not only the first).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
HOME = REPO_ROOT / "benchmarks" / ".cache" / "cold-start-home"
QUESTIONS = REPO_ROOT / "tests" / "golden" / "questions.jsonl"
TARGET_RATIO = 1.5
READY_TIMEOUT_SECONDS = 300


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    env.pop("DATABASE_URL", None)
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return {**env, "CAIRN_HOME": str(home), **extra}


def manage(home: Path, *args: str) -> str:
    """Run a manage.py command on ``home``; its stdout."""
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO_ROOT, env=_env(home), capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    if done.returncode:
        raise SystemExit(f"manage.py {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return done.stdout


def questions(count: int) -> list[str]:
    rows = [json.loads(line) for line in QUESTIONS.read_text().splitlines() if line.strip()]
    found = list(dict.fromkeys(r["question"] for r in rows if r.get("answerable", True)))
    if len(found) < count:
        raise SystemExit(f"{QUESTIONS} has only {len(found)} answerable questions")
    return found[:count]


class Server:
    """`manage.py serve` on ``home`` and a free port, stopped with Ctrl-C (SIGINT)."""

    def __init__(self, home: Path, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.started = time.perf_counter()
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--port", str(self.port)],
            cwd=REPO_ROOT, env=_env(home), start_new_session=True,
            stdout=log.open("wb"), stderr=subprocess.STDOUT,
        )  # fmt: skip

    def wait_ready(self) -> float:
        """Seconds from the start until /readyz answers 200."""
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"serve exited early; see {self.log}")
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", timeout=2) as response:  # noqa: S310
                    if response.status == 200:
                        return time.perf_counter() - self.started
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.1)
        raise SystemExit(f"not ready after {READY_TIMEOUT_SECONDS} s; see {self.log}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def post_json(url: str, key: str, body: dict[str, object]) -> dict[str, object]:
    request = urllib.request.Request(  # noqa: S310 (loopback)
        url,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310
        return dict(json.load(response))


PREPARED_CHECK = (
    "from kb.models import Document; "
    "print(Document.objects.filter(knowledge_base__slug='ledgerly-support').count(), "
    "Document.objects.filter(knowledge_base__slug='ledgerly-support').exclude(status='ready')"
    ".count())"
)


CACHE_CLEAR = "from chat.models import SemanticCacheEntry as E; E.objects.all().delete()"


def _demo_documents(home: Path) -> tuple[int, int]:
    """(demo documents, those not ready yet)."""
    last = manage(home, "shell", "-c", PREPARED_CHECK).strip().splitlines()[-1]
    total, pending = map(int, last.split())
    return total, pending


def prepare(home: Path, log: Path) -> None:
    """The demo knowledge base, ingested: one `manage.py serve` until every document is ready,
    then every unit's vector stored."""
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "pgdata").exists() or not _ready(home):
        server = Server(home, log)
        try:
            server.wait_ready()
            deadline = time.monotonic() + READY_TIMEOUT_SECONDS
            while not _ready(home):
                if time.monotonic() > deadline:
                    raise SystemExit("the demo documents did not become ready")
                time.sleep(1)
        finally:
            server.stop()
    # Ingestion queues the units' embedding after each document; what the worker had not
    # done when it stopped would be done during the next start's questions. (Idempotent:
    # a folder prepared before stores nothing.)
    manage(home, "units_embed")


def _ready(home: Path) -> bool:
    total, pending = _demo_documents(home)
    return bool(total) and not pending


def measure(home: Path, count: int) -> dict[str, object]:
    log_dir = home.parent
    prepare(home, log_dir / "cold-start-prepare.log")
    manage(home, "shell", "-c", CACHE_CLEAR)
    key = manage(home, "apikey", "create", "--account", "demo", "--scopes", "answer", "--name",
                 "cold-start benchmark").strip().splitlines()[-1]  # fmt: skip
    asked = questions(count)
    server = Server(home, log_dir / "cold-start-serve.log")
    try:
        ready_s = server.wait_ready()
        latencies: list[float] = []
        for question in asked:
            started = time.perf_counter()
            post_json(f"{server.url}/api/v1/answers", key,
                      {"question": question, "knowledge_base": "ledgerly-support"})  # fmt: skip
            latencies.append(time.perf_counter() - started)
    finally:
        server.stop()
    load = round(os.getloadavg()[0], 2)
    return {"ready_s": ready_s, "questions": asked, "latencies_s": latencies, "load": load}


def report(result: dict[str, object]) -> dict[str, object]:
    latencies = list(result["latencies_s"])  # type: ignore[call-overload]
    asked = list(result["questions"])  # type: ignore[call-overload]
    first, last = latencies[0], latencies[-1]
    rest = statistics.median(latencies[1:]) if len(latencies) > 1 else first
    ratio = first / rest if rest > 0 else float("inf")
    print(f"{'#':>3}  {'latency (s)':>11}  question")
    for i, (question, seconds) in enumerate(zip(asked, latencies, strict=True), 1):
        print(f"{i:>3}  {seconds:>11.3f}  {question[:70]}")
    print(f"ready after {result['ready_s']:.2f} s; load average {result.get('load', '?')}")
    met = ratio <= TARGET_RATIO
    print(
        f"target: first <= {TARGET_RATIO} x median of 2..{len(latencies)} ({rest:.3f} s) -> "
        f"{'met' if met else 'NOT met'} (ratio {ratio:.2f}; first / last "
        f"{first / last if last > 0 else float('inf'):.2f})"
    )
    line = {
        "benchmark": "cold_start",
        "questions": len(latencies),
        "ready_s": round(float(result["ready_s"]), 2),  # type: ignore[arg-type]
        "first_s": round(first, 3),
        "median_rest_s": round(rest, 3),
        "last_s": round(last, 3),
        "ratio": round(ratio, 2),
        "target_ratio": TARGET_RATIO,
        "met": met,
        "load_1m": result.get("load"),
    }
    print(json.dumps(line))
    return line


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", type=Path, default=HOME, help="data folder (kept between runs)")
    parser.add_argument("--questions", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=1, help="fresh starts, one after another")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    for _ in range(args.rounds):
        report(measure(args.home, args.questions))


if __name__ == "__main__":
    main()
