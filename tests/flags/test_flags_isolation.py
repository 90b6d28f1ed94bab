"""Tenant isolation of feature flags: one account's flags never reach another's users or
API keys, and one account's admin can neither list, open, add, change nor delete
another's flags."""

from __future__ import annotations

import pytest
from django.urls import reverse

from chat.models import Message
from chat.services.answers import answer_stream
from chat.services.conversations import conversation_start
from flags.models import Flag
from flags.selectors import flags_for, variant_for
from kb.models import ApiKey, AuditEvent
from tests.factories import make_account, make_knowledge_base, make_user
from tests.flags.conftest import make_flag

pytestmark = pytest.mark.django_db


@pytest.fixture
def two():
    """Alder with flags at 100% (every subject gets them) and Birch with one of its own."""
    alder, birch = make_account("Alder"), make_account("Birch")
    alder_flags = [
        make_flag(alder, "prompt_version", "v1", description="Alder's secret rollout"),
        make_flag(alder, "semantic_cache", "off"),
        make_flag(alder, "auto_tickets", "on"),
    ]
    birch_flag = make_flag(birch, "new_checkout", "birch-blue")
    return alder, birch, alder_flags, birch_flag


def test_a_flag_of_account_a_never_applies_to_account_bs_users_or_keys(two) -> None:
    alder, birch, _, _ = two
    birch_user = make_user(staff=False, account=birch, role="staff")
    birch_key = ApiKey.objects.create(account=birch, name="b", prefix="bpfx", digest="bdig")
    subjects = [f"user:{birch_user.pk}", f"key:{birch_key.pk}", *(f"user:{n}" for n in range(500))]

    for subject in subjects:
        assert flags_for(account_id=birch.pk, subject=subject) == {"new_checkout": "birch-blue"}
        for key in ("prompt_version", "semantic_cache", "auto_tickets"):
            assert variant_for(account_id=birch.pk, key=key, subject=subject) is None
    # and the other way round
    assert variant_for(account_id=alder.pk, key="new_checkout", subject="user:1") is None


def test_account_bs_answers_record_none_of_account_as_flags(two) -> None:
    alder, birch, _, _ = two

    def answered(account) -> Message:
        user = make_user(staff=False, account=account, role="staff")
        knowledge_base = make_knowledge_base(account)  # empty: the answer abstains, quickly
        _, pending = conversation_start(user_id=user.pk, knowledge_base=knowledge_base, text="Hi?")
        list(answer_stream(message_id=pending.pk, cancelled=lambda: False))
        return Message.objects.get(pk=pending.pk)

    alder_answer, birch_answer = answered(alder), answered(birch)

    assert alder_answer.flags == {
        "prompt_version": "v1", "semantic_cache": "off", "auto_tickets": "on",
    }  # fmt: skip
    assert birch_answer.flags == {"new_checkout": "birch-blue"}
    assert birch_answer.prompt_version == "answer/v2"


def test_account_bs_admin_cannot_list_open_add_change_or_delete_account_as_flags(
    client, two
) -> None:
    alder, birch, alder_flags, birch_flag = two
    client.force_login(make_user(account=birch, role="admin"))

    listed = client.get(reverse("admin:flags_flag_changelist")).content.decode()
    searched = client.get(reverse("admin:flags_flag_changelist"), {"q": "secret"}).content.decode()
    opened = [client.get(reverse("admin:flags_flag_change", args=[f.pk])) for f in alder_flags]
    deleted = client.post(
        reverse("admin:flags_flag_delete", args=[alder_flags[0].pk]), {"post": "yes"}
    )
    bulk = client.post(
        reverse("admin:flags_flag_changelist"),
        {"action": "delete_selected", "_selected_action": [f.pk for f in alder_flags],
         "post": "yes"},
    )  # fmt: skip
    add_form = client.get(reverse("admin:flags_flag_add")).content.decode()
    added = client.post(
        reverse("admin:flags_flag_add"),
        {"account": alder.pk, "key": "prompt_version", "variant": "v2",
         "rollout_percent": "100", "enabled": "on", "salt": "x"},
    )  # fmt: skip

    assert (
        "birch-blue" in listed
        and reverse("admin:flags_flag_change", args=[birch_flag.pk]) in listed
    )
    for flag in alder_flags:
        assert reverse("admin:flags_flag_change", args=[flag.pk]) not in listed + searched
    assert "Alder" not in listed and "secret rollout" not in searched
    assert {r.status_code for r in opened} == {302}  # the admin's answer to an unseen object
    assert deleted.status_code == 302 and bulk.status_code in (200, 302)
    assert Flag.objects.filter(account=alder).count() == 3  # nothing of Alder's deleted
    assert f'value="{alder.pk}"' not in add_form  # Alder is not among the choices
    assert added.status_code == 200 and "Select a valid choice" in added.content.decode()
    assert not Flag.objects.filter(account=alder, variant="v2").exists()


def test_account_bs_admin_manages_its_own_flags_with_an_audit_trail(client, two) -> None:
    _, birch, _, birch_flag = two
    client.force_login(make_user(account=birch, role="admin"))

    page = client.get(reverse("admin:flags_flag_change", args=[birch_flag.pk]))
    changed = client.post(
        reverse("admin:flags_flag_change", args=[birch_flag.pk]),
        {"account": birch.pk, "key": "new_checkout", "variant": "birch-green",
         "rollout_percent": "5", "enabled": "on", "salt": birch_flag.salt, "description": "",
         "initial-salt": birch_flag.salt},  # the hidden initial of a callable default
    )  # fmt: skip

    assert page.status_code == 200 and "Who gets the variant now" in page.content.decode()
    assert changed.status_code == 302, changed.content.decode()[:2000]
    assert Flag.objects.get(pk=birch_flag.pk).variant == "birch-green"
    event = AuditEvent.objects.get(action=AuditEvent.Action.ADMIN_CHANGE, account=birch)
    assert set(event.detail["fields"]) == {"variant", "rollout_percent"}
    # The change is what the next answer sees: the cache followed the save (5% now).
    picked = [variant_for(account_id=birch.pk, key="new_checkout", subject=f"user:{n}")
              for n in range(2000)]  # fmt: skip
    assert set(picked) == {None, "birch-green"}
