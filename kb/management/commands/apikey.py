"""API keys from the command line: for scripts and first setup.

``create`` prints only the key on stdout (``KEY=$(python manage.py apikey create …)``);
everything meant for people goes to stderr. Secrets are never listed: only prefixes.
"""

from __future__ import annotations

import argparse
from datetime import datetime, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from kb.models import Account, ApiKey
from kb.services.api_keys import KEY_PREFIX, ApiKeyError, api_key_create, api_key_revoke


def _when(moment: datetime | None, empty: str) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M") if moment else empty


def _shown(api_key: ApiKey) -> str:
    return f"{KEY_PREFIX}_{api_key.prefix}_…"


def _days(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"give a whole number of days, 1 or more (not {value!r})")
    return int(value)


class Command(BaseCommand):
    help = "Create, list and revoke API keys."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

        create = actions.add_parser("create", help="Create a key and print it (once).")
        create.add_argument("--account", required=True, help="Account slug.")
        create.add_argument(
            "--scopes", required=True, help="Comma-separated: read, answer, ingest."
        )
        create.add_argument("--name", default="", help="What or who uses the key.")
        create.add_argument(
            "--expires-in-days",
            type=_days,
            default=None,
            metavar="N",
            help="Expire after N days (default: never).",
        )

        listing = actions.add_parser("list", help="List keys (prefixes only, never secrets).")
        listing.add_argument("--account", help="Only this account's keys (slug).")

        revoke = actions.add_parser("revoke", help="Revoke a key.")
        revoke.add_argument("prefix", help="The key's prefix, as `list` shows it.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "create":
            self._create(options)
        elif options["action"] == "list":
            self._list(options["account"])
        else:
            self._revoke(options["prefix"])

    def _create(self, options: dict[str, Any]) -> None:
        account = _account(options["account"])
        days = options["expires_in_days"]
        expires_at = timezone.now() + timedelta(days=days) if days else None
        try:
            row, key = api_key_create(
                account=account,
                name=options["name"],
                scopes=options["scopes"].split(","),
                expires_at=expires_at,
            )
        except ApiKeyError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(key)
        expiry = f", expiring {_when(row.expires_at, '')}" if row.expires_at else ""
        self.stderr.write(
            f"Created {_shown(row)} “{row.name}” for {account.slug} with scopes "
            f"{row.scopes}{expiry}. It is not stored: keep it now, it will not be shown again."
        )

    def _list(self, account_slug: str | None) -> None:
        keys = ApiKey.objects.select_related("account").order_by("account__slug", "created_at")
        if account_slug:
            keys = keys.filter(account=_account(account_slug))
        now = timezone.now()
        rows = [
            (
                _shown(key),
                key.account.slug,
                key.name,
                key.scopes,
                key.status_at(now),
                _when(key.last_used_at, "never"),
            )
            for key in keys
        ]
        if not rows:
            self.stderr.write("No API keys.")
            return
        header = ("KEY", "ACCOUNT", "NAME", "SCOPES", "STATUS", "LAST USED")
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
        for row in [header, *rows]:
            cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
            self.stdout.write("  ".join(cells).rstrip())

    def _revoke(self, given: str) -> None:
        # Accept the bare prefix, the list's `cairn_<prefix>_…`, or the whole key.
        parts = given.strip().split("_")
        prefix = parts[1] if len(parts) > 1 and parts[0] == KEY_PREFIX else given.strip()
        api_key = ApiKey.objects.select_related("account").filter(prefix=prefix).first()
        if api_key is None:
            raise CommandError(f"no API key with prefix '{prefix}'")
        if api_key.revoked_at is not None:
            self.stderr.write(
                f"{_shown(api_key)} was already revoked ({_when(api_key.revoked_at, '')})."
            )
            return
        api_key_revoke(api_key=api_key)
        self.stdout.write(f"Revoked {_shown(api_key)} “{api_key.name}” of {api_key.account.slug}.")


def _account(slug: str) -> Account:
    account = Account.objects.filter(slug=slug).first()
    if account is None:
        raise CommandError(f"no account with slug '{slug}'")
    return account
