"""Run Cairn on one machine: database, migrations, first admin, demo, worker and web.

This is what ``make run`` calls. Ctrl-C stops the web server, then the worker,
then (through manage.py) the embedded database, each cleanly.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request
from io import StringIO
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ingest.services.demo import demo_load
from kb.services.accounts import superuser_ensure
from ops.preflight import (
    check_broker,
    check_database,
    check_port_free,
    check_vector_extension,
    require,
)
from ops.supervisor import Supervisor

READY_TIMEOUT_SECONDS = 120


def _child_env() -> dict[str, str]:
    # Unbuffered, so the children's logs interleave with ours as they happen.
    return {**os.environ, "PYTHONUNBUFFERED": "1", "DJANGO_SETTINGS_MODULE": "config.settings"}


def embedding_threads_per_process(concurrency: int) -> int:
    """Split the cores between worker processes: on 2 cores, two 1-thread processes
    embed about 15% faster than one 2-thread process (benchmarks/ingest.py), and
    each hides the other's parsing and database time."""
    return max(1, (os.cpu_count() or 1) // max(concurrency, 1))


class Command(BaseCommand):
    help = "Start Cairn (worker + ASGI web server) after checks, migrations and first-run setup."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default=settings.CAIRN_HOST)
        parser.add_argument("--port", type=int, default=settings.CAIRN_PORT)
        parser.add_argument("--no-worker", action="store_true", help="Do not start a worker.")
        parser.add_argument("--no-demo", action="store_true", help="Skip the demo documents.")

    def handle(self, *args: Any, **options: Any) -> None:
        host, port = options["host"], options["port"]
        # Cheapest and most common mistakes first; each raises StartupError (one line).
        require(check_port_free(host, port))
        require(check_database())
        require(check_vector_extension())
        require(check_broker())

        call_command("migrate", interactive=False, verbosity=0)
        # Chunks from before the shared keyword index, or from an older tokenisation
        # (a no-op query otherwise); online, so it could also run beside the server.
        call_command("keyword_reindex", verbosity=0, stdout=StringIO())
        self._first_run_setup(load_demo=settings.CAIRN_LOAD_DEMO and not options["no_demo"])

        supervisor = Supervisor()
        supervisor.install_signal_handlers()
        if not options["no_worker"]:
            worker_env = _child_env()
            if not settings.CAIRN_EMBEDDING_THREADS:
                threads = embedding_threads_per_process(settings.CAIRN_WORKER_CONCURRENCY)
                worker_env["CAIRN_EMBEDDING_THREADS"] = str(threads)
            supervisor.start("worker", self._worker_argv(), env=worker_env)
        supervisor.start("web", self._web_argv(host, port), env=_child_env())
        try:
            if self._wait_until_ready(host, port, supervisor):
                self.stdout.write(self.style.SUCCESS(f"Cairn is ready at http://{host}:{port}/"))
                self.stdout.write("Press Ctrl-C to stop.")
            exited = supervisor.wait()
        finally:
            self.stdout.write("Stopping Cairn…")
            supervisor.stop_all()
        if exited is not None:
            raise CommandError(
                f"the {exited.name} process exited with code {exited.process.returncode}; "
                "see its output above."
            )

    def _first_run_setup(self, *, load_demo: bool) -> None:
        password_file = settings.CAIRN_HOME / "admin_password.txt"
        password = superuser_ensure(username="admin", password_file=password_file)
        if password:
            self.stdout.write(
                self.style.WARNING(
                    f"Created the administrator: user 'admin', password '{password}' "
                    f"(saved in {password_file}; shown only this once)."
                )
            )
        if load_demo:
            result = demo_load()
            if result.created:
                self.stdout.write(f"Loaded {len(result.created)} demo documents.")
            for reason in result.rejected:
                self.stderr.write(f"demo document rejected: {reason}")

    @staticmethod
    def _worker_argv() -> list[str]:
        argv = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config.celery_app",
            "worker",
            "--loglevel=INFO",
            f"--concurrency={settings.CAIRN_WORKER_CONCURRENCY}",
            # One machine: the worker also runs the periodic tasks (beat).
            "--beat",
            f"--schedule={settings.CELERY_BEAT_SCHEDULE_FILENAME}",
        ]
        if not settings.CELERY_WORKER_ENABLE_REMOTE_CONTROL:
            argv += ["--without-heartbeat", "--without-gossip", "--without-mingle"]
        return argv

    @staticmethod
    def _web_argv(host: str, port: int) -> list[str]:
        return [
            sys.executable,
            "-m",
            "uvicorn",
            "config.asgi:application",
            "--host",
            host,
            "--port",
            str(port),
            # The lifespan start-up starts the warm-up (config/asgi.py, ops/warmup.py);
            # /readyz, which _wait_until_ready polls, says 503 "warming" until it is done.
            "--lifespan",
            "on",
            "--timeout-graceful-shutdown",
            "10",
        ]

    def _wait_until_ready(self, host: str, port: int, supervisor: Supervisor) -> bool:
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        url = f"http://{host}:{port}/readyz"
        while time.monotonic() < deadline and not supervisor.stop_requested:
            if any(child.process.poll() is not None for child in supervisor.children):
                return False
            try:
                with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (loopback)
                    if json.load(response).get("status") == "ok":
                        return True
            except (urllib.error.URLError, OSError, ValueError):
                pass
            time.sleep(0.3)
        return False
