"""Reading flags: the one cached helper every caller goes through.

``variant_for`` answers "which variant of ``key`` does this subject get?" from the
account's enabled flags, read once into Django's cache (Redis in production, the
per-process memory cache in embedded mode). Each account's entry is tagged with a version
token; saving or deleting a flag replaces the token (``flags_cache_invalidate``, connected
in ``FlagsConfig.ready``), so every process sharing the cache reads the new rows on its next
call, and the entry also expires after CAIRN_FLAGS_CACHE_SECONDS, which bounds how long a
process with its own memory cache can lag behind.

Subjects: ``"user:<id>"`` for a signed-in user, ``"key:<api key id>"`` for REST and
OpenAI-compatible calls (``subject_for``).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from flags.bucketing import in_rollout
from flags.models import Flag
from kb.models import ApiKey, Membership


@dataclass(frozen=True)
class FlagRule:
    """What the cache holds of a flag: enough to decide a subject's variant."""

    key: str
    variant: str
    percent: Decimal
    salt: str

    def applies_to(self, subject: str) -> bool:
        return in_rollout(salt=self.salt, key=self.key, subject=subject, percent=self.percent)


def subject_for(*, user_id: int | None = None, api_key_id: int | None = None) -> str:
    """The rollout subject of a request: its user, else its API key, else "" (nobody)."""
    if user_id is not None:
        return f"user:{user_id}"
    if api_key_id is not None:
        return f"key:{api_key_id}"
    return ""


def _version_key(account_id: int) -> str:
    return f"flags:version:{account_id}"


def _rules_key(account_id: int) -> str:
    return f"flags:rules:{account_id}"


def _version_bump(account_id: int) -> None:
    # No timeout: the token only has to differ from the one cached with the rules. Were it
    # evicted, the next read makes a new one, which again misses the cached rules: safe.
    cache.set(_version_key(account_id), secrets.token_hex(8), timeout=None)


def flag_rules(*, account_id: int) -> tuple[FlagRule, ...]:
    """The account's enabled flags with a non-zero rollout, from the cache when current."""
    version_key, rules_key = _version_key(account_id), _rules_key(account_id)
    found: dict[str, Any] = cache.get_many([version_key, rules_key])
    version = found.get(version_key)
    if version is None:
        version = secrets.token_hex(8)
        # add, not set: another process may have just made (and tagged rules with) one.
        if not cache.add(version_key, version, timeout=None):
            version = cache.get(version_key, version)
    cached = found.get(rules_key)
    if cached is not None and cached[0] == version:
        return tuple(cached[1])
    rules = tuple(
        FlagRule(key, variant, percent, salt)
        for key, variant, percent, salt in Flag.objects.filter(
            account_id=account_id, enabled=True, rollout_percent__gt=0
        ).values_list("key", "variant", "rollout_percent", "salt")
    )
    # Tagged with the version read *before* the rows: a save in between bumps the token,
    # so these rows are refused on the next read rather than trusted until they expire.
    cache.set(rules_key, (version, rules), timeout=settings.CAIRN_FLAGS_CACHE_SECONDS)
    return rules


def variant_for(*, account_id: int, key: str, subject: str) -> str | None:
    """The variant of ``key`` this subject gets, or None: no such enabled flag, or the
    subject is outside the rollout (or empty). Deterministic: a hash of the flag's salt,
    its key and the subject (``flags.bucketing``)."""
    if not subject:
        return None
    for rule in flag_rules(account_id=account_id):
        if rule.key == key:
            return rule.variant if rule.applies_to(subject) else None
    return None


def flags_for(*, account_id: int, subject: str) -> dict[str, str]:
    """Every flag whose variant applies to this subject: {key: variant}, what answers and
    ledger rows record. Empty for an empty subject."""
    if not subject:
        return {}
    return {
        rule.key: rule.variant
        for rule in flag_rules(account_id=account_id)
        if rule.applies_to(subject)
    }


def flags_cache_invalidate(sender: object, instance: Any, **kwargs: object) -> None:
    """post_save/post_delete receiver: the account's cached flags are stale.

    Bumped now, so this process sees its own change at once, and again after commit: a
    reader in another process between the two could have cached the rows as they were
    before the transaction committed, tagged with the first token.
    """
    account_id = instance.account_id
    _version_bump(account_id)
    transaction.on_commit(lambda: _version_bump(account_id))


@dataclass(frozen=True)
class Reach:
    """Who a flag's rollout picks among an account's real subjects (the admin's preview)."""

    users: int
    users_in: int
    api_keys: int
    api_keys_in: int

    @property
    def share(self) -> float | None:
        total = self.users + self.api_keys
        return None if total == 0 else (self.users_in + self.api_keys_in) / total


def flag_reach(*, flag: Flag) -> Reach:
    """How many of the account's members and live API keys get the flag's variant now
    (none while it is disabled), by the same hash ``variant_for`` uses."""

    def picked(subject: str) -> bool:
        return flag.enabled and in_rollout(
            salt=flag.salt, key=flag.key, subject=subject, percent=flag.rollout_percent
        )

    user_ids = set(
        Membership.objects.filter(account_id=flag.account_id).values_list("user_id", flat=True)
    )
    key_ids = set(
        ApiKey.objects.filter(account_id=flag.account_id, revoked_at__isnull=True)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now()))
        .values_list("pk", flat=True)
    )
    return Reach(
        users=len(user_ids),
        users_in=sum(picked(subject_for(user_id=pk)) for pk in user_ids),
        api_keys=len(key_ids),
        api_keys_in=sum(picked(subject_for(api_key_id=pk)) for pk in key_ids),
    )
