"""The README documents every environment variable Cairn reads."""

from __future__ import annotations

import re
from pathlib import Path

from config.env import REGISTRY

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_every_setting_is_in_the_configuration_table(settings) -> None:
    assert settings.SECRET_KEY  # the settings module has run, so REGISTRY is complete

    missing = [name for name in REGISTRY if f"| `{name}` |" not in README]

    assert not missing, f"README.md's configuration table lacks: {missing}"


def test_every_make_target_is_documented() -> None:
    makefile = (Path(__file__).resolve().parent.parent / "Makefile").read_text()
    targets = re.findall(r"^([a-z][a-z-]*):(?!=)", makefile, flags=re.MULTILINE)
    assert "run" in targets and "test" in targets

    missing = [target for target in targets if f"`make {target}`" not in README]

    assert not missing, f"README.md does not mention: {missing}"
