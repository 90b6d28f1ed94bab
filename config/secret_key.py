"""SECRET_KEY handling: generated once in embedded mode, strictly checked in production."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from config.env import ConfigurationError

MIN_LENGTH = 50
MIN_UNIQUE_CHARACTERS = 5
_INSECURE_PREFIX = "django-insecure"


def secret_key_problem(key: str) -> str | None:
    """Why ``key`` is too weak for production, or None if it is fine.

    The same rules as Django's ``security.W009`` deploy check, enforced at startup.
    """
    if not key:
        return "SECRET_KEY is not set"
    if key.startswith(_INSECURE_PREFIX):
        return "SECRET_KEY is Django's insecure development key"
    if len(key) < MIN_LENGTH:
        return f"SECRET_KEY is shorter than {MIN_LENGTH} characters"
    if len(set(key)) < MIN_UNIQUE_CHARACTERS:
        return f"SECRET_KEY has fewer than {MIN_UNIQUE_CHARACTERS} distinct characters"
    return None


def require_strong_secret_key(key: str) -> str:
    problem = secret_key_problem(key)
    if problem:
        raise ConfigurationError(
            f"{problem}; set SECRET_KEY (or SECRET_KEY_FILE) to a random string of at least "
            f"{MIN_LENGTH} characters, e.g. the output of "
            '`python -c "import secrets; print(secrets.token_urlsafe(64))"`'
        )
    return key


def load_or_create_secret_key(path: Path) -> str:
    """Read the embedded-mode key from ``path``, creating it (mode 0600) on first use."""
    try:
        key = path.read_text().strip()
    except FileNotFoundError:
        key = ""
    if secret_key_problem(key) is None:
        return key
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()  # an empty or truncated file from an interrupted first start
    key = secrets.token_urlsafe(64)
    # O_EXCL: when two processes race on first start, one wins and both read its key.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    return key
