"""How long `make run` takes until /readyz answers 200: first run, then a second run.

The target (issue 2): a second `make run` reuses everything and serves within 15 s.
Runs `make run` for real on a private data folder (benchmarks/.cache/startup-home,
or --fresh for a new one) and a free port, then stops it with Ctrl-C (SIGINT).
Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
HOME = REPO_ROOT / "benchmarks" / ".cache" / "startup-home"
TARGET_SECONDS = 15.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def time_make_run(home: Path) -> tuple[float, float]:
    """(seconds until /readyz is 200, seconds to stop after Ctrl-C)."""
    port = free_port()
    env = {**os.environ, "CAIRN_HOME": str(home), "CAIRN_PORT": str(port)}
    env.pop("DATABASE_URL", None)
    started = time.perf_counter()
    process = subprocess.Popen(
        ["make", "--no-print-directory", "run"],
        cwd=REPO_ROOT,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while True:
            if process.poll() is not None:
                raise SystemExit(f"make run exited early with code {process.returncode}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.1)
        ready = time.perf_counter() - started
    finally:
        stopping = time.perf_counter()
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        process.wait(timeout=120)
    return ready, time.perf_counter() - stopping


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fresh", action="store_true", help="start from an empty data folder")
    parser.add_argument("--runs", type=int, default=3, help="second-run repetitions")
    args = parser.parse_args()
    if args.fresh and HOME.exists():
        shutil.rmtree(HOME)
    HOME.parent.mkdir(parents=True, exist_ok=True)

    first_ready, first_stop = time_make_run(HOME)
    again = [time_make_run(HOME) for _ in range(args.runs)]
    ready_again = sorted(r for r, _ in again)
    worst = ready_again[-1]

    print(f"{'run':<28}{'ready (s)':>12}{'stop (s)':>12}")
    print(f"{'first (this folder)':<28}{first_ready:>12.2f}{first_stop:>12.2f}")
    for i, (ready, stop) in enumerate(again, 1):
        print(f"{f'again #{i}':<28}{ready:>12.2f}{stop:>12.2f}")
    print(
        f"target: second run ready within {TARGET_SECONDS:.0f} s -> "
        f"{'met' if worst <= TARGET_SECONDS else 'NOT met'} (worst {worst:.2f} s)"
    )
    print(
        json.dumps(
            {
                "benchmark": "startup",
                "first_ready_s": round(first_ready, 2),
                "again_ready_s": [round(r, 2) for r in ready_again],
                "again_worst_s": round(worst, 2),
                "target_s": TARGET_SECONDS,
                "met": worst <= TARGET_SECONDS,
            }
        )
    )


if __name__ == "__main__":
    main()
