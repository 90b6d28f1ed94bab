"""The apps' layering, as docs/architecture.md draws it, holds for every import.

Layers, lowest first; a module may import its own layer and the ones below it, never
one above. Every import counts, at module level or inside a function: a function-level
import that reaches upwards is the same dependency, only hidden.

    config.settings (and what it imports)  - no app at all
    kb                                     - tenants, knowledge bases, search, guards
    flags                                  - feature flags and staged rollouts
    ingest                                 - documents in: parse, chunk, embed
    chat                                   - gateway, answers, chat UI, APIs
    tickets                                - escalation to a person: tickets, inbox
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LAYERS = ("kb", "flags", "ingest", "chat", "tickets")


def _imports(path: Path) -> set[str]:
    """Top-level packages this file imports, anywhere in it."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
    return found


@pytest.mark.parametrize("app", LAYERS)
def test_an_app_imports_no_app_above_it(app: str) -> None:
    above = set(LAYERS[LAYERS.index(app) + 1 :])
    offenders = sorted(
        f"{path.relative_to(REPO)} imports {', '.join(sorted(_imports(path) & above))}"
        for path in (REPO / app).rglob("*.py")
        if _imports(path) & above
    )
    assert not offenders, offenders


def test_importing_the_settings_imports_no_app() -> None:
    code = (
        "import sys, config.settings\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {LAYERS!r}))"
    )
    run = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert run.stdout.strip() == "[]", run.stdout
