"""Percentage rollouts: who gets a flag's variant, deterministically, and how the cached
helper follows a change to the flags."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from flags.bucketing import bucket, in_rollout
from flags.models import Flag
from flags.selectors import flag_reach, flags_for, subject_for, variant_for
from tests.factories import make_account, make_user
from tests.flags.conftest import make_flag

pytestmark = pytest.mark.django_db

USERS = [f"user:{n}" for n in range(1, 10_001)]


def test_a_five_percent_flag_gives_the_variant_to_four_to_six_percent_of_ten_thousand_users():
    account = make_account()
    make_flag(account, "prompt_version", "v1", percent=5)

    first = {s: variant_for(account_id=account.pk, key="prompt_version", subject=s) for s in USERS}
    again = {s: variant_for(account_id=account.pk, key="prompt_version", subject=s) for s in USERS}
    cache.clear()  # another process, or this one after the entry expired: read afresh
    after_clear = {
        s: variant_for(account_id=account.pk, key="prompt_version", subject=s) for s in USERS
    }

    share = sum(v == "v1" for v in first.values()) / len(USERS)
    assert 0.04 <= share <= 0.06, share
    assert set(first.values()) == {"v1", None}
    assert first == again == after_clear  # the same user always gets the same variant


def test_two_flags_at_the_same_percentage_pick_different_users():
    account = make_account()
    one = make_flag(account, "prompt_version", "v1", percent=5)
    two = make_flag(account, "new_checkout", "on", percent=5)
    assert one.salt != two.salt  # each flag draws its own salt

    picked_one = {s for s in USERS if variant_for(account_id=account.pk, key=one.key, subject=s)}
    picked_two = {s for s in USERS if variant_for(account_id=account.pk, key=two.key, subject=s)}

    # Independent draws overlap on about 5% of 5% (25 users), not on all of them.
    assert len(picked_one & picked_two) < 0.2 * min(len(picked_one), len(picked_two))


def test_the_same_key_and_salt_pick_the_same_users_however_the_flag_is_read():
    # The bucket is a pure function of (salt, key, subject): no process state, no seed.
    assert bucket(salt="s", key="k", subject="user:7") == bucket(
        salt="s", key="k", subject="user:7"
    )
    assert 0 <= bucket(salt="s", key="k", subject="user:7") < 10_000
    buckets = {bucket(salt="s", key="k", subject=s) for s in USERS[:2000]}
    assert len(buckets) > 1500  # spread over the range, not a few values


def test_zero_percent_gives_it_to_nobody_and_a_hundred_to_everybody():
    account = make_account()
    make_flag(account, "semantic_cache", "off", percent=0)
    make_flag(account, "auto_tickets", "on", percent=100)

    assert not any(variant_for(account_id=account.pk, key="semantic_cache", subject=s)
                   for s in USERS[:2000])  # fmt: skip
    assert all(variant_for(account_id=account.pk, key="auto_tickets", subject=s) == "on"
               for s in USERS[:2000])  # fmt: skip
    assert flags_for(account_id=account.pk, subject="user:1") == {"auto_tickets": "on"}


def test_a_fraction_of_a_percent_and_growing_a_rollout_keeps_those_already_in():
    assert in_rollout(salt="x", key="k", subject="user:1", percent=0) is False
    half = {s for s in USERS if in_rollout(salt="x", key="k", subject=s, percent=Decimal("0.5"))}
    five = {s for s in USERS if in_rollout(salt="x", key="k", subject=s, percent=5)}

    assert 20 <= len(half) <= 80  # 0.5% of 10,000 is 50
    assert half <= five  # a rollout grown from 0.5% to 5% keeps its first users


def test_a_disabled_flag_an_unknown_key_or_no_subject_gives_no_variant():
    account = make_account()
    make_flag(account, "prompt_version", "v1", percent=100, enabled=False)
    make_flag(account, "new_thing", "blue", percent=100)

    assert variant_for(account_id=account.pk, key="prompt_version", subject="user:1") is None
    assert variant_for(account_id=account.pk, key="missing", subject="user:1") is None
    assert variant_for(account_id=account.pk, key="new_thing", subject="") is None
    assert flags_for(account_id=account.pk, subject="") == {}
    assert flags_for(account_id=account.pk, subject="key:3") == {"new_thing": "blue"}


def test_subjects_are_users_in_the_browser_and_api_keys_over_the_api():
    assert subject_for(user_id=4) == "user:4"
    assert subject_for(user_id=None, api_key_id=9) == "key:9"
    assert subject_for() == ""


# --- the cache ----------------------------------------------------------------------------


def test_a_saved_change_is_seen_at_once_and_reads_come_from_the_cache(
    django_assert_num_queries,
):
    account = make_account()
    flag = make_flag(account, "prompt_version", "v1", percent=100)
    assert variant_for(account_id=account.pk, key="prompt_version", subject="user:1") == "v1"

    with django_assert_num_queries(0):  # cached: no query per answer
        assert variant_for(account_id=account.pk, key="prompt_version", subject="user:2") == "v1"

    flag.rollout_percent = Decimal(0)
    flag.save()
    assert variant_for(account_id=account.pk, key="prompt_version", subject="user:1") is None

    flag.rollout_percent, flag.variant = Decimal(100), "v2"
    flag.save()
    assert variant_for(account_id=account.pk, key="prompt_version", subject="user:1") == "v2"

    flag.delete()
    assert variant_for(account_id=account.pk, key="prompt_version", subject="user:1") is None


def test_rows_another_process_read_before_the_commit_are_not_trusted_after_it(
    django_capture_on_commit_callbacks,
):
    account = make_account()
    with django_capture_on_commit_callbacks(execute=True):
        flag = make_flag(account, "prompt_version", "v1", percent=100)
        # Given another process that read the rows while the save was not yet committed
        # (it saw none) and cached them under the version the save had just bumped
        version = cache.get(f"flags:version:{account.pk}")
        cache.set(f"flags:rules:{account.pk}", (version, ()), timeout=60)
        assert variant_for(account_id=account.pk, key=flag.key, subject="user:1") is None
    # When the save commits, the version is bumped again: those rows are refused
    assert variant_for(account_id=account.pk, key=flag.key, subject="user:1") == "v1"


def test_the_cache_entry_expires_so_a_process_with_its_own_cache_catches_up(settings):
    # A process whose cache is its own memory (embedded mode) is not told of a save made
    # elsewhere; the short TTL bounds how long it lags. Simulated: the row changes behind
    # the cache's back (an UPDATE sends no signal), then the entry expires.
    account = make_account()
    flag = make_flag(account, "prompt_version", "v1", percent=100)
    assert variant_for(account_id=account.pk, key="prompt_version", subject="user:1") == "v1"
    Flag.objects.filter(pk=flag.pk).update(variant="v2")  # no signal: the cache is stale

    assert variant_for(account_id=account.pk, key="prompt_version", subject="user:1") == "v1"
    cache.delete(f"flags:rules:{account.pk}")  # what the TTL does after CAIRN_FLAGS_CACHE_SECONDS
    assert variant_for(account_id=account.pk, key="prompt_version", subject="user:1") == "v2"


# --- validation -----------------------------------------------------------------------------


def test_known_keys_refuse_variants_they_cannot_use():
    account = make_account()

    for key, variant, message in [
        ("semantic_cache", "maybe", 'takes "on" or "off"'),
        ("auto_tickets", "yes", 'takes "on" or "off"'),
        ("prompt_version", "v99", "no answer prompt 'v99'"),
        ("route_chain:simple", "no-colon-here", "is not provider:model"),
        ("route_chain:nope", "openai:gpt-4o-mini", "no route named 'nope'"),
    ]:
        with pytest.raises(ValidationError, match=message):
            make_flag(account, key, variant)
    with pytest.raises(ValidationError, match="Lower-case letters"):
        make_flag(account, "Bad Key", "on")

    # Accepted: versions on disk, parseable chains, and any new key with any variant.
    make_flag(account, "prompt_version", "v1")
    make_flag(account, "route_chain:complex", "openai:gpt-4o-mini, local:extractive")
    make_flag(account, "shiny_new_thing", "whatever")


def test_one_flag_per_account_and_key():
    account, other = make_account(), make_account()
    make_flag(account, "prompt_version", "v1")
    make_flag(other, "prompt_version", "v1")  # another account may have its own

    with pytest.raises(IntegrityError), transaction.atomic():
        Flag.objects.create(account=account, key="prompt_version", variant="v2")


def test_the_reach_preview_counts_the_accounts_members_and_keys_the_hash_picks():
    from kb.models import ApiKey

    account = make_account()
    members = [make_user(staff=False, account=account, role="staff") for _ in range(40)]
    ApiKey.objects.create(account=account, name="ci", prefix="p1", digest="d1")
    flag = make_flag(account, "prompt_version", "v1", percent=50)

    reach = flag_reach(flag=flag)

    expected = sum(
        variant_for(account_id=account.pk, key=flag.key, subject=f"user:{m.pk}") == "v1"
        for m in members
    )
    assert (reach.users, reach.users_in, reach.api_keys) == (40, expected, 1)
    assert 0 < reach.users_in < 40
