"""README.md stays a short entry point whose links all lead somewhere.

The reference it used to hold lives in docs/: every setting is in docs/configuration.md,
generated and kept current by tests/test_configuration_reference.py; the API examples are
in docs/api.md, run by tests/test_readme_api.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
PAGES = [README, *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)


def test_every_make_target_is_documented() -> None:
    makefile = (REPO / "Makefile").read_text()
    targets = re.findall(r"^([a-z][a-z-]*):(?!=)", makefile, flags=re.MULTILINE)
    assert "run" in targets and "test" in targets

    missing = [target for target in targets if f"`make {target}`" not in README.read_text()]

    assert not missing, f"README.md does not mention: {missing}"


def test_the_readme_stays_a_short_entry_point() -> None:
    text = README.read_text(encoding="utf-8")

    assert len(text.splitlines()) <= 250
    for page in ("configuration", "api", "operations", "security", "evaluation"):
        assert f"](docs/{page}.md)" in text, f"README.md does not link docs/{page}.md"
    assert "](docs/img/chat.png)" in text


def anchors(page: Path) -> set[str]:
    """The heading anchors GitHub makes for a Markdown page (code blocks skipped)."""
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    seen: dict[str, int] = {}
    found = set()
    for title in re.findall(r"^#{1,6} +(.+?) *#*$", text, flags=re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(REPO)))
def test_every_relative_link_leads_to_a_file_and_heading(page: Path) -> None:
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    text = re.sub(r"`[^`\n]*`", "", text)  # code spans hold no links
    broken = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z]+:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target} (no such heading)")

    assert not broken, f"{page.relative_to(REPO)} has broken links: {broken}"
