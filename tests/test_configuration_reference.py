"""docs/configuration.md is generated from the settings' help strings and kept current."""

from __future__ import annotations

import difflib

import pytest
from django.core.management import CommandError, call_command

from config.env import REGISTRY
from ops import configuration_reference
from ops.configuration_reference import COMMAND, REFERENCE_FILE, render
from ops.management.commands import config_reference


@pytest.fixture(scope="module")
def generated() -> str:
    return render()


def test_docs_configuration_md_is_what_the_settings_generate(generated) -> None:
    current = REFERENCE_FILE.read_text(encoding="utf-8")

    diff = "".join(
        difflib.unified_diff(
            current.splitlines(keepends=True),
            generated.splitlines(keepends=True),
            "docs/configuration.md",
            "generated",
            n=0,
        )
    )
    assert current == generated, f"docs/configuration.md is stale; run `{COMMAND}`:\n{diff}"


def test_every_setting_this_process_read_has_a_row(settings, generated) -> None:
    assert settings.SECRET_KEY  # the settings module has run, so REGISTRY is complete

    missing = [name for name in REGISTRY if f"| `{name}` |" not in generated]

    assert not missing, f"docs/configuration.md lacks: {missing}"


def test_the_reference_has_both_modes_and_the_sections_of_the_settings(generated) -> None:
    # Read only with HTTPS on, which is production's default: found by the second import.
    assert "| `CAIRN_HSTS_PRELOAD` | `true` |" in generated
    assert "| `CAIRN_HTTPS` | `false` embedded, `true` production |" in generated
    assert "\n## LLM gateway\n" in generated
    gateway = generated.split("\n## LLM gateway\n", 1)[1].split("\n## ", 1)[0]
    assert "| `CAIRN_ROUTE_SIMPLE_MAX_TOKENS` |" in gateway  # an f-string name, placed
    assert "| `ANTHROPIC_API_KEY_FILE` |" in gateway  # NAME_FILE goes with NAME


def test_the_command_writes_the_file_and_check_fails_while_it_is_stale(
    monkeypatch, tmp_path, generated
) -> None:
    target = tmp_path / "configuration.md"
    target.write_text("# Configuration reference\n\nOld text.\n", encoding="utf-8")
    monkeypatch.setattr(config_reference, "REFERENCE_FILE", target)
    monkeypatch.setattr(configuration_reference, "REFERENCE_FILE", target)

    with pytest.raises(CommandError) as stale:
        call_command("config_reference", "--check")
    assert stale.value.returncode == 1
    assert COMMAND in str(stale.value)
    assert target.read_text(encoding="utf-8").endswith("Old text.\n")  # --check writes nothing

    call_command("config_reference")
    assert target.read_text(encoding="utf-8") == generated
    call_command("config_reference", "--check")  # current now: no error
