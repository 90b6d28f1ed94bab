"""The feedback loop: a thumbs-down lands in the account's review queue, one Save turns it
into a golden case, and `evaluate --from-db` (or "Run now") tells whether it passes now."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from chat.models import Conversation, GoldenCase, Message
from chat.services.answers import answer_stream
from chat.tasks import golden_cases_run_task
from kb.models import AuditEvent, Document
from tests.factories import make_account, make_knowledge_base, make_user

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
QUEUE = "admin:chat_feedbackreview_changelist"
CASES = "admin:chat_goldencase_changelist"
GROWTH = "How much is the Growth plan?"
PAYROLL = "Which bank runs Ledgerly's payroll?"


@pytest.fixture
def people(help_kb, staff):
    other_account = make_account("Bolt")
    make_knowledge_base(other_account, "Bolt help")
    return {
        "asker": staff,
        "admin": make_user(staff=True, account=help_kb.account, role="admin"),
        "viewer": make_user(staff=True, account=help_kb.account, role="staff"),
        "other_admin": make_user(staff=True, account=other_account, role="admin"),
    }


def ask_and_rate(client, knowledge_base, question: str, rating: str, comment: str) -> Message:
    """What a support agent does in the chat: ask, read the answer, rate it."""
    client.post(
        reverse("chat:conversation_start"),
        {"knowledge_base": knowledge_base.pk, "question": question},
        **HTMX,
    )
    conversation = Conversation.objects.filter(title=question).get()
    answer = conversation.messages.get(role=Message.Role.ASSISTANT)
    list(answer_stream(message_id=answer.pk, cancelled=lambda: False))  # the stream view's work
    client.post(
        reverse("chat:feedback", args=[answer.pk]), {"rating": rating, "comment": comment}, **HTMX
    )
    return Message.objects.get(pk=answer.pk)


def make_case_url(answer: Message) -> str:
    return reverse("admin:chat_feedbackreview_golden_case", args=[answer.feedback.get().pk])


def plans(help_kb) -> Document:
    return Document.objects.get(knowledge_base=help_kb, original_filename="plans.md")


def test_a_thumbs_down_is_in_its_accounts_review_queue_only(help_kb, people, client) -> None:
    client.force_login(people["asker"])
    down = ask_and_rate(client, help_kb, GROWTH, "down", 'It should say "$590 per year".')
    ask_and_rate(client, help_kb, "How do refunds work?", "up", "")

    client.force_login(people["admin"])
    queue = client.get(reverse(QUEUE)).content.decode()
    client.force_login(people["other_admin"])
    elsewhere = client.get(reverse(QUEUE))
    form_elsewhere = client.get(make_case_url(down))

    assert GROWTH in queue and "$590 per year" in queue  # the question and the comment
    assert people["asker"].get_username() in queue
    assert "Plans and prices" in queue  # the passages the answer cited
    assert f'href="{make_case_url(down)}"' in queue and "Make golden case" in queue
    assert "How do refunds work?" not in queue, "a thumbs-up is not for review"
    assert elsewhere.status_code == 200 and GROWTH not in elsewhere.content.decode()
    assert form_elsewhere.status_code == 404


def test_one_save_makes_a_golden_case_and_a_second_does_not_duplicate_it(
    help_kb, people, client
) -> None:
    client.force_login(people["asker"])
    answer = ask_and_rate(client, help_kb, GROWTH, "down", 'It should say "$590 per year".')
    client.force_login(people["admin"])
    url = make_case_url(answer)

    form = client.get(url).context["form"]
    fields = {
        "question": GROWTH,
        "expected_answer": "$590 per year",
        "expected_source": plans(help_kb).pk,
    }
    first = client.post(url, fields)
    second = client.post(url, fields)

    # The form starts from the question, the quoted text and the document that holds it.
    assert form.initial["question"] == GROWTH
    assert form.initial["expected_answer"] == "$590 per year"
    assert form.initial["expected_source"] == plans(help_kb).pk
    assert first.status_code == second.status_code == 302
    case = GoldenCase.objects.get()
    assert (case.account, case.knowledge_base, case.question) == (help_kb.account, help_kb, GROWTH)
    assert (case.expected_answer, case.expected_source) == ("$590 per year", plans(help_kb))
    assert case.expected_source_path == "plans.md" and not case.expect_abstention
    assert (case.created_from, case.created_by) == (answer, people["admin"])
    assert case.last_passed is None and case.verdict == "not run"
    [added] = AuditEvent.objects.filter(action=AuditEvent.Action.ADMIN_ADD)
    assert (added.target_type, added.target_id) == ("chat.goldencase", str(case.pk))
    assert added.account == help_kb.account
    queue = client.get(reverse(QUEUE)).content.decode()
    assert reverse("admin:chat_goldencase_change", args=[case.pk]) in queue and "not run" in queue


def test_a_case_needs_an_expectation_and_only_the_accounts_admins_make_one(
    help_kb, people, client
) -> None:
    client.force_login(people["asker"])
    answer = ask_and_rate(client, help_kb, GROWTH, "down", "Wrong.")
    url = make_case_url(answer)

    client.force_login(people["admin"])
    empty = client.post(url, {"question": GROWTH})
    client.force_login(people["viewer"])
    viewed = client.get(reverse(QUEUE))
    by_viewer = client.post(url, {"question": GROWTH, "expected_answer": "$590"})
    client.force_login(people["other_admin"])
    by_other = client.post(url, {"question": GROWTH, "expected_answer": "$590"})

    assert empty.status_code == 200 and "Say what the right answer is" in empty.content.decode()
    assert viewed.status_code == 200 and GROWTH in viewed.content.decode()
    assert by_viewer.status_code == 403 and by_other.status_code == 404
    assert not GoldenCase.objects.exists()


def test_evaluate_from_db_runs_the_cases_and_the_queue_shows_whether_each_passes(
    help_kb, people, client, tmp_path
) -> None:
    client.force_login(people["asker"])
    growth = ask_and_rate(client, help_kb, GROWTH, "down", 'Missing "$590 per year".')
    payroll = ask_and_rate(client, help_kb, PAYROLL, "down", "Which bank is it?")
    client.force_login(people["admin"])
    expected = {"expected_answer": "$590 per year", "expected_source": plans(help_kb).pk}
    client.post(make_case_url(growth), {"question": GROWTH, **expected})
    client.post(make_case_url(payroll), {"question": PAYROLL, "expected_answer": "Barclays"})
    out, report = io.StringIO(), tmp_path / "report.json"

    call_command(
        "evaluate", "--from-db", "--account", help_kb.account.slug, "--json", str(report),
        stdout=out,
    )  # fmt: skip

    text = out.getvalue()
    passing = GoldenCase.objects.get(question=GROWTH)
    failing = GoldenCase.objects.get(question=PAYROLL)
    assert f"golden cases of {help_kb.account.slug}/{help_kb.slug}: 2" in text
    assert "hybrid" in text and "answer-contains 0.500" in text  # the usual metrics
    assert f"PASS #{passing.pk} {GROWTH}" in text
    assert f"FAIL #{failing.pk} {PAYROLL}" in text and "Barclays" in text
    assert "golden cases: 1 of 2 pass" in text
    assert passing.last_passed is True and passing.last_run_at is not None
    assert "$590 per year" in passing.last_answer and passing.last_detail == ""
    assert failing.last_passed is False and failing.last_detail
    [cases] = json.loads(report.read_text())["golden_cases"]
    assert {c["question"]: c["passed"] for c in cases["cases"]} == {GROWTH: True, PAYROLL: False}
    queue = client.get(reverse(QUEUE)).content.decode()
    assert "passes now" in queue and "fails now" in queue
    assert client.get(reverse(QUEUE), {"golden_case": "no"}).context["cl"].result_count == 0


def test_a_case_expecting_it_does_not_know_passes_when_the_answer_abstains(
    help_kb, people, client
) -> None:
    swallow = "What is the airspeed of an unladen swallow?"
    client.force_login(people["asker"])
    answer = ask_and_rate(client, help_kb, swallow, "down", "It should say it doesn't know.")
    client.force_login(people["admin"])
    client.post(make_case_url(answer), {"question": swallow, "expect_abstention": "on"})

    golden_cases_run_task(help_kb.account.pk)

    case = GoldenCase.objects.get()
    assert case.expect_abstention and case.last_passed is True, case.last_detail


def test_run_now_in_the_admin_records_the_verdicts_of_the_selected_cases(
    help_kb, people, client
) -> None:
    client.force_login(people["asker"])
    growth = ask_and_rate(client, help_kb, GROWTH, "down", 'Missing "$590 per year".')
    client.force_login(people["admin"])
    client.post(make_case_url(growth), {"question": GROWTH, "expected_answer": "$590 per year"})
    case = GoldenCase.objects.get()

    client.force_login(people["other_admin"])
    client.post(reverse(CASES), {"action": "run_now", "_selected_action": [case.pk]})
    untouched = GoldenCase.objects.get().last_run_at
    client.force_login(people["admin"])
    response = client.post(
        reverse(CASES), {"action": "run_now", "_selected_action": [case.pk]}, follow=True
    )

    assert untouched is None, "another account's admin cannot run it"
    assert "1 of 1 golden case pass now." in response.content.decode()
    assert GoldenCase.objects.get().last_passed is True
    assert "passes now" in client.get(reverse(CASES)).content.decode()


def test_evaluate_from_db_goes_alongside_a_question_file_or_needs_one_of_them(
    help_kb, people, client, tmp_path
) -> None:
    client.force_login(people["asker"])
    growth = ask_and_rate(client, help_kb, GROWTH, "down", 'Missing "$590 per year".')
    client.force_login(people["admin"])
    client.post(make_case_url(growth), {"question": GROWTH, "expected_answer": "$590 per year"})
    questions = tmp_path / "q.jsonl"
    questions.write_text(json.dumps({"question": "How long do refunds take?", "answers": ["5"]}))
    out = io.StringIO()

    call_command(
        "evaluate", "--questions", str(questions), "--kb", help_kb.slug, "--from-db",
        "--mode", "hybrid", stdout=out,
    )  # fmt: skip

    text = out.getvalue()
    assert text.count("hybrid ") == 2, "the file's questions, then the knowledge base's cases"
    assert "golden cases: 1 of 1 pass" in text
    with pytest.raises(CommandError, match="give --questions FILE.jsonl, --from-db, or both"):
        call_command("evaluate", kb=help_kb.slug, stdout=io.StringIO())
    with pytest.raises(CommandError, match="no account with slug 'nope'"):
        call_command("evaluate", "--from-db", "--account", "nope", stdout=io.StringIO())
