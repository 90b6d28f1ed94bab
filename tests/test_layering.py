"""The apps' layering, as docs/architecture.md draws it, holds for every import.

Layers, lowest first; a module may import its own layer and the ones below it, never
one above. Every import counts, at module level or inside a function: a function-level
import that reaches upwards is the same dependency, only hidden.

    embedded       - the embedded default's PostgreSQL + pgvector (no Django app)
    observability  - logs, request ids, metrics, traces
    web            - the HTTP edges: the API's error shape, parsers, schema, client address
    kb             - tenants, knowledge bases, search, guards
    flags          - feature flags and staged rollouts
    ingest         - documents in: parse, chunk, embed
    llm            - the gateway: providers, routes, retries, breakers, caches, ledger
    chat           - gateway, answers, chat UI, APIs
    tickets        - escalation to a person: tickets, inbox
    ops            - serve, preflight, readiness, warm-up, the configuration reference

``config`` (settings, URLs, ASGI, Celery, dispatch) is the composition root: every layer
may import it, and it imports none of the apps: it names them only as strings (installed
apps, URL includes, middleware) and reaches them through signals.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LAYERS = (
    "embedded", "observability", "web", "kb", "flags", "ingest", "llm", "chat", "tickets",
    "ops",
)  # fmt: skip
# What config may import: the libraries it starts processes with.
CONFIG_MAY_IMPORT = {"embedded", "observability"}


def _imports(path: Path) -> set[str]:
    """Top-level packages this file imports, anywhere in it."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
    return found


def _offenders(package: str, forbidden: set[str]) -> list[str]:
    return sorted(
        f"{path.relative_to(REPO)} imports {', '.join(sorted(_imports(path) & forbidden))}"
        for path in (REPO / package).rglob("*.py")
        if _imports(path) & forbidden
    )


@pytest.mark.parametrize("app", LAYERS)
def test_an_app_imports_no_app_above_it(app: str) -> None:
    assert not _offenders(app, set(LAYERS[LAYERS.index(app) + 1 :]))


def test_config_imports_no_app() -> None:
    assert not _offenders("config", set(LAYERS) - CONFIG_MAY_IMPORT)


def test_the_libraries_under_config_do_not_import_it() -> None:
    # config imports them, so one importing config would close a cycle.
    for package in sorted(CONFIG_MAY_IMPORT):
        assert not _offenders(package, {"config"}), package


def test_importing_the_settings_imports_no_app() -> None:
    apps = tuple(app for app in LAYERS if app not in CONFIG_MAY_IMPORT)
    code = (
        "import sys, config.settings\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {apps!r}))"
    )
    run = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert run.stdout.strip() == "[]", run.stdout
