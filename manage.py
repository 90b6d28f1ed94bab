#!/usr/bin/env python
"""Django's command-line utility, with Cairn's embedded database and one-line errors."""

from __future__ import annotations

import os
import sys


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.core.exceptions import ImproperlyConfigured

    from embedded.bootstrap import ensure_embedded_database
    from ops.preflight import StartupError, describe_database_error

    try:
        # embedded_db starts and stops it itself; config_reference needs no database.
        if sys.argv[1:2] not in (["embedded_db"], ["config_reference"]):
            ensure_embedded_database(stop_at_exit=True)
        from django.core.management import execute_from_command_line

        execute_from_command_line(sys.argv)
    except (StartupError, ImproperlyConfigured) as exc:
        # Misconfiguration gets one readable line naming the fix, not a traceback.
        print(f"cairn: error: {exc}", file=sys.stderr)  # noqa: T201 (the CLI's one line)
        return 2
    except Exception as exc:
        message = describe_database_error(exc)
        if message is None:
            raise
        print(f"cairn: error: {message}", file=sys.stderr)  # noqa: T201
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
