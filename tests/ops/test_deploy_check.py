"""Production settings pass Django's deployment checks, warnings included."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent


def test_check_deploy_passes_at_warning_level_with_production_settings(tmp_path) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/test",
        "SECRET_KEY": secrets.token_urlsafe(60),
        "REDIS_URL": "redis://127.0.0.1:6379/13",
        "CAIRN_ALLOWED_HOSTS": "cairn.example.com",
        "CAIRN_HOME": str(tmp_path),
    }
    env.pop("CAIRN_HTTPS", None)  # production's default: on

    done = subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip

    assert done.returncode == 0, done.stdout + done.stderr
    assert "no issues" in done.stdout
