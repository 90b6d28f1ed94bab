"""Settings from the environment: typed values, secret keys, registry."""

from __future__ import annotations

import stat

import pytest

from config.env import REGISTRY, ConfigurationError, env_bool, env_int, env_secret
from config.secret_key import load_or_create_secret_key, secret_key_problem


@pytest.fixture(autouse=True)
def _registry_unchanged():
    """Helpers called here register CAIRN_TEST_* names; keep them out of the real registry."""
    saved = dict(REGISTRY)
    yield
    REGISTRY.clear()
    REGISTRY.update(saved)


def test_embedded_secret_key_is_generated_once_and_kept_private(tmp_path) -> None:
    path = tmp_path / "secret_key"

    first = load_or_create_secret_key(path)
    second = load_or_create_secret_key(path)

    assert first == second
    assert secret_key_problem(first) is None
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_truncated_embedded_key_file_is_replaced(tmp_path) -> None:
    path = tmp_path / "secret_key"
    path.write_text("")

    key = load_or_create_secret_key(path)

    assert secret_key_problem(key) is None
    assert path.read_text().strip() == key


def test_typed_helpers_reject_values_of_the_wrong_type(monkeypatch) -> None:
    monkeypatch.setenv("CAIRN_TEST_FLAG", "maybe")
    monkeypatch.setenv("CAIRN_TEST_COUNT", "ten")

    with pytest.raises(ConfigurationError, match="CAIRN_TEST_FLAG='maybe' is not a boolean"):
        env_bool("CAIRN_TEST_FLAG", False, help="test")
    with pytest.raises(ConfigurationError, match="is not a whole number"):
        env_int("CAIRN_TEST_COUNT", 1, help="test")


def test_secrets_can_come_from_files(monkeypatch, tmp_path) -> None:
    secret_file = tmp_path / "key"
    secret_file.write_text("from-a-file\n")
    monkeypatch.delenv("CAIRN_TEST_SECRET", raising=False)
    monkeypatch.setenv("CAIRN_TEST_SECRET_FILE", str(secret_file))

    assert env_secret("CAIRN_TEST_SECRET", "", help="test") == "from-a-file"


def test_settings_register_every_variable_they_read(settings) -> None:
    for name in ["DATABASE_URL", "REDIS_URL", "SECRET_KEY", "CAIRN_HOME", "CAIRN_MAX_UPLOAD_MB"]:
        assert name in REGISTRY
    assert settings.CAIRN_EMBEDDED is True
