"""Typed environment variables, registered so that docs and tests can list them.

Every setting Cairn reads from the environment goes through one of the helpers
below. Each call records the variable in ``REGISTRY``; ``manage.py config_reference``
writes docs/configuration.md from it (a test fails when that file is stale), and
``compose.yaml`` is checked against it, so a variable cannot be read without being
documented, nor set in compose without being read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured


class ConfigurationError(ImproperlyConfigured):
    """A setting is missing or wrong; the message names the fix in one line."""


@dataclass(frozen=True)
class EnvVar:
    name: str
    default: str
    help: str


REGISTRY: dict[str, EnvVar] = {}

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _register(name: str, default: object, help: str, shown: str | None = None) -> str | None:
    REGISTRY[name] = EnvVar(name=name, default=str(default) if shown is None else shown, help=help)
    return os.environ.get(name)


def env_str(name: str, default: str, *, help: str) -> str:
    raw = _register(name, default, help)
    return default if raw is None else raw


def env_secret(name: str, default: str, *, help: str) -> str:
    """A secret from ``NAME`` or from the file named by ``NAME_FILE`` (Docker secrets)."""
    raw = _register(name, default, help)
    file_name = f"{name}_FILE"
    REGISTRY[file_name] = EnvVar(file_name, "", f"Path of a file holding {name}.")
    path = os.environ.get(file_name)
    if raw is None and path:
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise ConfigurationError(
                f"{file_name}={path} cannot be read ({exc.strerror})."
            ) from exc
    return default if raw is None else raw


def env_bool(name: str, default: bool, *, help: str) -> bool:
    raw = _register(name, "true" if default else "false", help)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigurationError(f"{name}={raw!r} is not a boolean; use true or false.")


def env_int(name: str, default: int, *, help: str) -> int:
    raw = _register(name, default, help)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigurationError(f"{name}={raw!r} is not a whole number.") from exc


def env_float(name: str, default: float, *, help: str) -> float:
    raw = _register(name, default, help)
    if raw is None or raw.strip() == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ConfigurationError(f"{name}={raw!r} is not a number.") from exc


def env_list(name: str, default: list[str], *, help: str) -> list[str]:
    raw = _register(name, ",".join(default), help)
    if raw is None:
        return list(default)
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_path(name: str, default: Path, *, help: str, shown: str) -> Path:
    raw = _register(name, default, help, shown)
    return Path(raw).expanduser().resolve() if raw else default
