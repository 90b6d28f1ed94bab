"""The inbox's live stream: rows of new and changed tickets, pushed without a reload.

The stream is served by a separate uvicorn process (tests.support.web_process) and the
tickets are opened and changed by this test process, through core's services: the change
crosses processes through the database only, as it does between several web servers. The
stream's reads (``tickets.inbox.inbox_changes``) are also tested on their own, for the
change committed late and the row that leaves a filtered list.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta

import httpx2
import pytest
from django.conf import settings as django_settings
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tests.factories import make_account, make_user
from tests.support.web_process import WebProcess
from tests.tickets.core_support import member, queue
from tickets.inbox import OVERLAP, InboxCursor, InboxFilter, inbox_changes
from tickets.models import Ticket
from tickets.services.tickets import ticket_open, ticket_status_set

pytestmark = pytest.mark.django_db(transaction=True)

READ_SECONDS = 60


def session_of(user) -> dict[str, str]:
    browser = Client()
    browser.force_login(user)
    name = django_settings.SESSION_COOKIE_NAME
    return {name: browser.cookies[name].value}


class Events:
    """The events of one SSE stream, read on a thread of their own as they arrive."""

    def __init__(self, url: str, cookies: dict[str, str]) -> None:
        self.received: list[tuple[str, str]] = []
        self.status = 0
        self._changed = threading.Condition()
        self._opened = threading.Event()
        self._stop = False
        self._thread = threading.Thread(target=self._read, args=(url, cookies), daemon=True)
        self._thread.start()
        assert self._opened.wait(READ_SECONDS), "the stream did not open"

    def _read(self, url: str, cookies: dict[str, str]) -> None:
        try:
            self._read_events(url, cookies)
        except httpx2.HTTPError:  # the server went away (the test is over)
            self._opened.set()

    def _read_events(self, url: str, cookies: dict[str, str]) -> None:
        with httpx2.stream("GET", url, cookies=cookies, timeout=READ_SECONDS) as response:
            self.status = response.status_code
            self._opened.set()
            event, data = "", []
            for line in response.iter_lines():
                if self._stop:
                    return
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].removeprefix(" "))
                elif line == "" and event:
                    with self._changed:
                        self.received.append((event, "\n".join(data)))
                        self._changed.notify_all()
                    event, data = "", []

    def wait_for(self, event: str, text: str) -> list[tuple[str, str]]:
        """Until an ``event`` whose data holds ``text`` has arrived; everything so far."""
        deadline = timezone.now() + timedelta(seconds=READ_SECONDS)
        with self._changed:
            while not any(e == event and text in d for e, d in self.received):
                left = (deadline - timezone.now()).total_seconds()
                assert left > 0, f"no {event} event with {text!r}; got {self.received}"
                self._changed.wait(timeout=left)
            return list(self.received)

    def close(self) -> None:
        self._stop = True


@pytest.fixture
def web(tmp_path) -> Iterator[WebProcess]:
    server = WebProcess(tmp_path / "web.log", CAIRN_SSE_HEARTBEAT_SECONDS="1").start()
    try:
        yield server
    finally:
        server.kill()


def stream_url(web: WebProcess, **query: object) -> str:
    since = timezone.now().isoformat()
    params = httpx2.QueryParams({**{k: str(v) for k, v in query.items()}, "since": since})
    return f"{web.url}{reverse('tickets:stream')}?{params}"


def test_a_new_ticket_reaches_its_accounts_inboxes_and_no_other(web) -> None:
    # Given two accounts, each with an agent whose inbox is open
    ours, theirs = make_account("Ledgerly"), make_account("Elsewhere")
    agent, stranger = member(ours), member(theirs)
    our_inbox = Events(stream_url(web), session_of(agent))
    their_inbox = Events(stream_url(web), session_of(stranger))
    try:
        assert our_inbox.status == their_inbox.status == 200

        # When a ticket is opened in our account (by this process, not the server's)
        ticket = ticket_open(
            account=ours, origin=Ticket.Origin.API, question="My invoice shows the wrong VAT."
        )

        # Then our inbox gets its row, and theirs, which hears of a ticket of its own
        # opened after ours, never gets ours
        events = our_inbox.wait_for("ticket", f'id="ticket-{ticket.pk}"')
        row = next(d for e, d in events if f'id="ticket-{ticket.pk}"' in d)
        assert "My invoice shows the wrong VAT." in row and "Unrouted" in row
        theirs_ticket = ticket_open(account=theirs, origin=Ticket.Origin.API, question="Hi?")
        seen = their_inbox.wait_for("ticket", f'id="ticket-{theirs_ticket.pk}"')
        assert not any(f'ticket-{ticket.pk}"' in d for _, d in seen)
    finally:
        our_inbox.close()
        their_inbox.close()


def test_a_queues_inbox_gets_a_ticket_once_it_is_routed_there_and_loses_it_when_solved(
    web,
) -> None:
    # Given an agent whose inbox shows the open tickets of the Billing queue
    account = make_account("Ledgerly")
    agent = member(account)
    billing = queue(account, "Billing", agent)
    inbox = Events(stream_url(web, queue=billing.pk, status="open"), session_of(agent))
    try:
        ticket = ticket_open(account=account, origin=Ticket.Origin.API, question="Refund?")

        # When triage classifies and routes it there (as tickets.services.triage saves it)
        ticket.category, ticket.urgency, ticket.confidence = "billing", "high", 0.91
        ticket.classified_at, ticket.queue = timezone.now(), billing
        ticket.save()

        # Then the row arrives, classified and routed
        events = inbox.wait_for("ticket", f'id="ticket-{ticket.pk}"')
        row = [d for e, d in events if e == "ticket" and f"ticket-{ticket.pk}" in d][-1]
        assert "Billing" in row and "billing" in row and "91%" in row and "High" in row

        # And once solved it leaves this list
        ticket_status_set(ticket=ticket, status=Ticket.Status.SOLVED, by=agent)
        inbox.wait_for("gone", str(ticket.pk))
    finally:
        inbox.close()


def test_only_members_get_a_stream(web) -> None:
    nobody = make_user(staff=False)

    anonymous = httpx2.get(stream_url(web), timeout=READ_SECONDS)
    no_account = httpx2.get(stream_url(web), cookies=session_of(nobody), timeout=READ_SECONDS)

    assert anonymous.status_code == 403 and no_account.status_code == 403


def test_a_change_committed_after_a_look_is_still_sent_once() -> None:
    account = make_account("Ledgerly")
    agent = member(account)
    ticket = ticket_open(account=account, origin=Ticket.Origin.API, question="Late one?")
    everything = InboxFilter()

    # Given a stream that has looked until after the ticket's stamp (its transaction
    # committed only after that look)
    cursor = InboxCursor(seen_until=ticket.updated_at + OVERLAP / 2)

    # Then its next look still sends it, and the one after does not again
    first = inbox_changes(user=agent, inbox_filter=everything, cursor=cursor)
    again = inbox_changes(user=agent, inbox_filter=everything, cursor=cursor)
    assert [t.pk for t in first.shown] == [ticket.pk] and first.gone == []
    assert again.shown == [] and again.gone == []

    # And a change to it is sent, or, when it leaves a filtered list, said gone
    ticket_status_set(ticket=ticket, status=Ticket.Status.SOLVED, by=agent)
    open_only = InboxFilter(status="open")
    changed = inbox_changes(user=agent, inbox_filter=open_only, cursor=cursor)
    assert changed.shown == [] and changed.gone == [ticket.pk]
