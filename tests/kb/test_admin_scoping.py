"""In the admin, a staff user of account A never sees or changes account B's data."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from chat.models import Budget
from kb.models import Document, KnowledgeBase, Membership
from tests.factories import make_account, make_document, make_knowledge_base, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def tenants():
    account_a, account_b = make_account("Acme"), make_account("Bolt")
    kb_a, kb_b = (
        make_knowledge_base(account_a, "Acme help"),
        make_knowledge_base(account_b, "Bolt help"),
    )
    doc_a = make_document(kb_a, "Acme refund policy")
    doc_b = make_document(kb_b, "Bolt secret roadmap")
    staff_a = make_user(account=account_a, role="admin")
    return {
        "a": account_a,
        "b": account_b,
        "kb_a": kb_a,
        "kb_b": kb_b,
        "doc_a": doc_a,
        "doc_b": doc_b,
        "staff_a": staff_a,
    }


def test_document_list_shows_only_own_accounts_documents(client, tenants) -> None:
    client.force_login(tenants["staff_a"])

    page = client.get(reverse("admin:kb_document_changelist")).content.decode()

    assert "Acme refund policy" in page
    assert "Bolt secret roadmap" not in page
    assert "Bolt help" not in page, "filters must not leak other accounts' knowledge bases"


def test_other_accounts_document_cannot_be_opened_changed_or_deleted(client, tenants) -> None:
    client.force_login(tenants["staff_a"])
    doc_b = tenants["doc_b"]
    change_url = reverse("admin:kb_document_change", args=[doc_b.pk])
    delete_url = reverse("admin:kb_document_delete", args=[doc_b.pk])

    opened = client.get(change_url)
    changed = client.post(change_url, {"title": "pwned"})
    deleted = client.post(delete_url, {"post": "yes"})

    # Django's admin answers "does not exist" with a redirect to the index.
    assert opened.status_code == 302 and opened.url == reverse("admin:index")
    assert changed.status_code == 302
    assert deleted.status_code == 302
    doc_b.refresh_from_db()
    assert doc_b.title == "Bolt secret roadmap"


def test_own_document_can_be_renamed(client, tenants) -> None:
    client.force_login(tenants["staff_a"])
    doc_a = tenants["doc_a"]

    response = client.post(
        reverse("admin:kb_document_change", args=[doc_a.pk]), {"title": "Acme refunds (2026)"}
    )

    assert response.status_code == 302
    doc_a.refresh_from_db()
    assert doc_a.title == "Acme refunds (2026)"


def test_other_accounts_knowledge_bases_chunks_and_accounts_are_invisible(client, tenants) -> None:
    client.force_login(tenants["staff_a"])

    kbs = client.get(reverse("admin:kb_knowledgebase_changelist")).content.decode()
    accounts = client.get(reverse("admin:kb_account_changelist")).content.decode()
    other_kb = client.get(reverse("admin:kb_knowledgebase_change", args=[tenants["kb_b"].pk]))

    assert "Acme help" in kbs and "Bolt help" not in kbs
    assert "Acme" in accounts and "Bolt" not in accounts
    assert other_kb.status_code == 302


def test_upload_cannot_target_another_accounts_knowledge_base(client, tenants) -> None:
    client.force_login(tenants["staff_a"])
    url = reverse("admin:kb_document_add")

    form_page = client.get(url).content.decode()
    response = client.post(
        url,
        {
            "knowledge_base": tenants["kb_b"].pk,
            "uploads": [SimpleUploadedFile("plan.txt", b"Sneaky plan", content_type="text/plain")],
        },
    )

    assert "Acme help" in form_page and "Bolt help" not in form_page
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert not Document.objects.filter(knowledge_base=tenants["kb_b"], title="Plan").exists()


def test_staff_role_may_view_but_not_change(client, tenants) -> None:
    viewer = make_user(account=tenants["a"], role="staff")
    client.force_login(viewer)
    doc_a = tenants["doc_a"]

    listing = client.get(reverse("admin:kb_document_changelist"))
    changed = client.post(reverse("admin:kb_document_change", args=[doc_a.pk]), {"title": "x"})
    upload = client.get(reverse("admin:kb_document_add"))

    assert listing.status_code == 200 and "Acme refund policy" in listing.content.decode()
    assert changed.status_code == 403
    assert upload.status_code == 302
    doc_a.refresh_from_db()
    assert doc_a.title == "Acme refund policy"


def test_user_without_membership_sees_no_knowledge_base_data(client, tenants) -> None:
    outsider = make_user(account=None)
    client.force_login(outsider)

    index = client.get(reverse("admin:index")).content.decode()
    listing = client.get(reverse("admin:kb_document_changelist"))

    assert "Documents" not in index
    assert listing.status_code == 403


def test_superuser_sees_every_account(admin_client, tenants) -> None:
    page = admin_client.get(reverse("admin:kb_document_changelist")).content.decode()

    assert "Acme refund policy" in page and "Bolt secret roadmap" in page
    assert KnowledgeBase.objects.count() == 2


def _budget_form(account, user) -> dict[str, object]:
    return {
        "account": account.pk, "user": user.pk if user else "", "period": "day",
        "token_cap": "1000", "cost_cap": "", "soft_threshold": "0.8",
    }  # fmt: skip


def test_a_budget_is_set_for_a_member_of_the_editors_account(client, tenants) -> None:
    # Given an admin of Acme and a member of Acme
    member = make_user(staff=False, account=tenants["a"], role="staff")
    client.force_login(tenants["staff_a"])

    # When they add a budget for that member
    response = client.post(reverse("admin:chat_budget_add"), _budget_form(tenants["a"], member))

    # Then it is saved
    assert response.status_code == 302
    assert Budget.objects.filter(account=tenants["a"], user_id=member.pk).exists()


def test_a_budget_cannot_name_a_user_of_another_account(client, tenants) -> None:
    # Given an admin of Acme and Bolt, and a user who is only in Bolt
    editor = tenants["staff_a"]
    Membership.objects.create(user_id=editor.pk, account=tenants["b"], role=Membership.Role.ADMIN)
    bolt_only = make_user(staff=False, account=tenants["b"], role="staff")
    client.force_login(editor)

    # When they add an Acme budget for the Bolt user
    response = client.post(reverse("admin:chat_budget_add"), _budget_form(tenants["a"], bolt_only))

    # Then the user field is refused: the user is not of the budget's account
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "is not of the account" in " ".join(errors["user"])
    assert not Budget.objects.exists()


def test_superusers_cannot_mix_tenants_in_one_row_either(admin_client, tenants) -> None:
    bolt_only = make_user(staff=False, account=tenants["b"], role="staff")

    response = admin_client.post(
        reverse("admin:chat_budget_add"), _budget_form(tenants["a"], bolt_only)
    )

    assert response.status_code == 200
    assert "user" in response.context["adminform"].form.errors
    assert not Budget.objects.exists()


def test_a_superuser_still_makes_anyone_a_member(admin_client, tenants) -> None:
    newcomer = make_user(staff=True, account=None)

    response = admin_client.post(
        reverse("admin:kb_membership_add"),
        {"user": newcomer.pk, "account": tenants["b"].pk, "role": "staff"},
    )

    assert response.status_code == 302
    assert Membership.objects.filter(user_id=newcomer.pk, account=tenants["b"]).exists()


@pytest.mark.parametrize(
    ("label", "lookup"),
    [
        ("kb.Account", "id"),
        ("auth.User", "memberships__account_id"),
        ("kb.Chunk", "account_id"),
        ("chat.Message", "conversation__account_id"),
        # Through the required message, not the optional API key.
        ("chat.Feedback", "message__conversation__account_id"),
        ("chat.BudgetWindow", "budget__account_id"),
        ("auth.Permission", None),
        ("llm.LlmRoute", None),
    ],
)
def test_each_model_is_traced_to_its_account(label, lookup) -> None:
    from django.apps import apps

    from kb.admin.scoping import account_lookup_for

    assert account_lookup_for(apps.get_model(label)) == lookup
