"""Escalation in a real browser: an abstaining answer becomes a ticket that an agent works.

Two browser contexts (two people, two sessions) on the live ASGI server, headless
Chromium: the asker in the chat, the agent in the staff inbox, already open. The asker
asks what the demo documents do not say; the answer abstains, which (the account's
TicketSettings say so) opens a ticket; triage classifies it with the local classifier
and routes it to the billing queue, and asks for Cairn's draft. Celery work runs in the
process that queues it (eager tasks), here the live server's answer thread, as the other
browser tests run answers there. The inbox shows the ticket without a reload (its SSE
stream); the agent opens it, edits the draft and sends it; the asker's conversation,
never reloaded either, shows the reply. Screenshots of each moment go to
test-artifacts/browser/.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.contrib.auth.models import AbstractUser
from playwright.sync_api import Browser, Page, expect

from kb.models import KnowledgeBase
from tests.browser.test_chat_in_browser import (
    ABSTENTION,
    ask,
    finished_answer,
    from_database,
    log_in,
)
from tests.factories import make_user
from tests.support.live_server import LiveServer
from tests.support.tasks import tasks_run_inline
from tickets.models import Queue, RoutingRule, Ticket, TicketSettings

pytestmark = pytest.mark.django_db(transaction=True)

# Nothing in the demo documents says; the local classifier calls it billing.
QUESTION = "Do you offer a discount for charities on the subscription?"
REPLY = (
    "Registered charities get 25% off the Growth plan. Reply with your charity number "
    "and we will apply it from your next invoice."
)
# The inbox hears of changes within a second; the asker's page asks every few seconds.
LIVE_TIMEOUT_MS = 30_000
# Set once a page has loaded: still there later, the page was never reloaded.
LOADED_MARK = "window.__notReloaded = true"
NOT_RELOADED = "window.__notReloaded === true"


@pytest.fixture
def escalation(demo_knowledge_base: KnowledgeBase) -> dict[str, object]:
    """The demo account opens a ticket when an answer abstains; billing tickets go to the
    Billing queue, whose one member is the agent."""
    account = demo_knowledge_base.account
    agent = make_user(staff=False, account=account, role="staff")
    billing = Queue.objects.create(account=account, name="Billing", slug="billing")
    billing.members.add(agent.pk)
    technical = Queue.objects.create(account=account, name="Technical", slug="technical")
    RoutingRule.objects.create(account=account, position=10, category="billing", queue=billing)
    RoutingRule.objects.create(account=account, position=20, category="technical", queue=technical)
    TicketSettings.objects.create(account=account, open_on_abstention=True)
    return {"agent": agent, "billing": billing}


@pytest.fixture
def agent_page(asgi_server: LiveServer, browser: Browser) -> Iterator[Page]:
    """A second browser context: the agent's own cookies, beside the asker's ``page``."""
    context = browser.new_context(base_url=asgi_server.url, viewport={"width": 1280, "height": 800})
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


def test_an_abstaining_answer_becomes_a_ticket_that_an_agent_answers_in_the_conversation(
    escalation, chat_user: AbstractUser, agent_page: Page, page: Page, screenshot
) -> None:
    agent, billing = escalation["agent"], escalation["billing"]
    assert isinstance(agent, AbstractUser) and isinstance(billing, Queue)

    with tasks_run_inline():
        # Given the agent's inbox open on the Billing queue, with nothing in it yet
        log_in(agent_page, agent)
        agent_page.goto(f"/inbox/?queue={billing.pk}")
        agent_page.evaluate(LOADED_MARK)
        expect(agent_page.locator(".inbox-empty")).to_be_visible()
        screenshot(agent_page, "agent-inbox-empty")

        # When the asker asks what the documents do not say
        log_in(page, chat_user)
        ask(page, QUESTION)
        page.wait_for_url("**/chat/c/*/")
        page.evaluate(LOADED_MARK)

        # Then the answer abstains
        answer = finished_answer(page)
        expect(answer).to_have_class("message assistant status-abstained")
        expect(answer.locator(".answer-text")).to_have_text(ABSTENTION)

        # And a ticket is opened, which the conversation says, with the queue's
        # acknowledgement, without a reload
        expect(page.locator("#ticket-status")).to_contain_text(
            "A person will reply here", timeout=LIVE_TIMEOUT_MS
        )
        expect(page.locator(".message.agent").first).to_contain_text(
            "A person from Billing will reply here", timeout=LIVE_TIMEOUT_MS
        )
        page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
        screenshot(page, "asker-abstained-ticket-opened", full_page=False)
        ticket = from_database(lambda: Ticket.objects.get())
        assert ticket.origin == Ticket.Origin.ABSTENTION and ticket.asker_id == chat_user.pk

        # And the agent's inbox, never reloaded, shows it classified and in Billing
        row = agent_page.locator(f"#ticket-{ticket.pk}")
        expect(row).to_be_visible(timeout=LIVE_TIMEOUT_MS)
        expect(row.locator(".ticket-category")).to_contain_text("billing", timeout=LIVE_TIMEOUT_MS)
        expect(row.locator(".ticket-category .confidence")).to_contain_text("%")
        expect(row.locator(".ticket-queue")).to_have_text("Billing")
        expect(row.locator(".ticket-subject")).to_contain_text("discount for charities")
        assert agent_page.evaluate(NOT_RELOADED), "the inbox was reloaded"
        expect(agent_page.locator(".inbox-empty")).to_be_hidden()
        screenshot(agent_page, "agent-inbox-ticket-arrived")

        # When the agent opens it
        row.locator(".ticket-subject a").click()
        agent_page.wait_for_url(f"**/inbox/t/{ticket.pk}/")

        # Then it shows the conversation, the classification, and Cairn's draft, which
        # has nothing from the documents to say
        expect(agent_page.locator(".ticket-main")).to_contain_text(QUESTION)
        expect(agent_page.locator(".ticket-main")).to_contain_text(ABSTENTION)
        expect(agent_page.locator("#ticket-queue")).to_have_text("Billing")
        expect(agent_page.locator("#ticket-category")).to_contain_text("confidence")
        expect(agent_page.locator("#ticket-reply")).to_contain_text(
            "Nothing in the knowledge base answers this question", timeout=LIVE_TIMEOUT_MS
        )
        draft_box = agent_page.get_by_label("Your reply")
        drafted = draft_box.input_value()
        assert drafted.startswith("Hello ") and "support" in drafted
        screenshot(agent_page, "agent-ticket-with-draft")

        # When they assign it to themselves, then edit the draft and send it
        agent_page.get_by_role("button", name="Assign to me").click()
        expect(agent_page.locator("#ticket-status-value")).to_have_text("Assigned")
        draft_box = agent_page.get_by_label("Your reply")
        edited = drafted.replace("\n\nBest regards", f"\n\n{REPLY}\n\nBest regards", 1)
        assert REPLY in edited
        draft_box.fill(edited)
        screenshot(agent_page, "agent-reply-edited")
        agent_page.get_by_role("button", name="Send to the asker").click()

        # Then the ticket waits on the asker, its timeline holding the reply
        expect(agent_page.locator("#ticket-status-value")).to_have_text("Waiting on the customer")
        expect(agent_page.locator(".timeline .event-reply")).to_contain_text(REPLY)
        screenshot(agent_page, "agent-reply-sent")

        # And the asker's conversation, never reloaded, shows the reply as the support team's
        reply = page.locator(".message.agent", has_text="Registered charities")
        expect(reply).to_be_visible(timeout=LIVE_TIMEOUT_MS)
        expect(reply.locator(".agent-name")).to_contain_text("Support")
        expect(page.locator("#ticket-status")).to_contain_text("waiting on the customer")
        assert page.evaluate(NOT_RELOADED), "the conversation was reloaded"
        page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
        screenshot(page, "asker-reply-in-conversation", full_page=False)

    sent = from_database(lambda: Ticket.objects.get(pk=ticket.pk))
    assert sent.status == Ticket.Status.WAITING and sent.first_response_at is not None
    assert sent.queue_id == billing.pk and sent.category == "billing"
    assert sent.assignee_id == agent.pk
