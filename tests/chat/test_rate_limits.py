"""Question rate limits: per user, per API key and per client address, in sliding windows
that hold at window boundaries, the client address behind trusted proxies, and the 429
answers of the chat and the API.

Tests that aim at a window boundary move the counters' clock by hand; the others run on
the real clock, which cannot matter: a sliding window never starts its count over.
"""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.test import RequestFactory
from django.urls import reverse

from chat.models import Conversation
from chat.ratelimits import client_ip, question_limits_check
from chat.services.conversations import conversation_start
from tests.factories import make_user
from tests.support.api import api_client, error_of
from tests.support.clock import MIDNIGHT, HandClock, hand_clock_install
from web.sliding_window import SLICES

HTMX = {"HTTP_HX_REQUEST": "true"}
ANSWERS = "/api/v1/answers"
COMPLETIONS = "/v1/chat/completions"
PROXY = "10.0.0.2"


@pytest.fixture(autouse=True)
def _fresh_counters(settings):
    """Counters of other tests never count here, and answers are composed at once."""
    settings.CAIRN_EXTRACTIVE_TOKEN_DELAY_MS = 0
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def hand_clock(monkeypatch) -> HandClock:
    return hand_clock_install(monkeypatch)


def ask_in_chat(client, kb, address="203.0.113.1", **extra):
    return client.post(
        reverse("chat:conversation_start"),
        {"knowledge_base": kb.pk, "question": "How do refunds work?"},
        REMOTE_ADDR=address, **extra,
    )  # fmt: skip


def ask_api(client, address="203.0.113.1", **extra):
    return client.post(
        ANSWERS, {"question": "How do refunds work?"}, format="json", REMOTE_ADDR=address, **extra
    )


def retry_after(response) -> int:
    seconds = int(response["Retry-After"])
    assert 1 <= seconds <= 3600 + 3600 / SLICES  # an hour, and the slice the window may overrun
    return seconds


# --- which counter a question counts against -------------------------------------------


@pytest.mark.django_db
def test_each_user_has_a_quota_of_their_own(help_kb, staff, client, settings) -> None:
    settings.CAIRN_CHAT_RATE_LIMIT = "2/h"
    colleague = make_user(staff=False, account=help_kb.account, role="staff")
    client.force_login(staff)

    statuses = [ask_in_chat(client, help_kb, **HTMX).status_code for _ in range(3)]
    client.force_login(colleague)
    colleagues = ask_in_chat(client, help_kb, **HTMX)

    assert statuses == [200, 200, 429]
    assert colleagues.status_code == 200
    assert Conversation.objects.filter(user=staff).count() == 2


@pytest.mark.django_db
def test_each_api_key_has_a_quota_of_its_own_apart_from_users(help_kb, settings) -> None:
    settings.CAIRN_API_KEY_RATE_LIMIT = "2/h"
    settings.CAIRN_CHAT_RATE_LIMIT = "1/h"  # a key is not a user: this does not apply
    first, _, _ = api_client(help_kb.account, ["answer"])
    second, _, _ = api_client(help_kb.account, ["answer"])

    statuses = [ask_api(first).status_code for _ in range(3)]
    others = ask_api(second)

    assert statuses == [200, 200, 429]
    assert "with this API key" in error_of(ask_api(first))["message"]
    assert others.status_code == 200


@pytest.mark.django_db
def test_several_keys_from_one_address_share_its_quota(help_kb, settings) -> None:
    settings.CAIRN_IP_RATE_LIMIT = "3/h"
    clients = [api_client(help_kb.account, ["answer"])[0] for _ in range(5)]

    statuses = [ask_api(c, "203.0.113.5").status_code for c in clients[:4]]
    elsewhere = ask_api(clients[4], "198.51.100.9")

    assert statuses == [200, 200, 200, 429]
    assert elsewhere.status_code == 200


@pytest.mark.django_db
def test_users_of_the_chat_count_against_their_address_too(
    help_kb, staff, client, settings
) -> None:
    settings.CAIRN_IP_RATE_LIMIT = "2/h"
    api, _, _ = api_client(help_kb.account, ["answer"])
    client.force_login(staff)

    statuses = [
        ask_in_chat(client, help_kb, "203.0.113.5", **HTMX).status_code,
        ask_api(api, "203.0.113.5").status_code,
    ]
    refused = ask_in_chat(client, help_kb, "203.0.113.5", **HTMX)

    assert statuses == [200, 200] and refused.status_code == 429
    assert "from this address" in refused.content.decode()


def test_an_ipv6_client_counts_as_its_whole_slash_64(settings) -> None:
    settings.CAIRN_IP_RATE_LIMIT = "1/h"
    factory = RequestFactory()

    first = question_limits_check(
        request=factory.post("/", REMOTE_ADDR="2001:db8:1:2::1"), user_id=None
    )
    same_network = question_limits_check(
        request=factory.post("/", REMOTE_ADDR="2001:db8:1:2:ffff::9"), user_id=None
    )
    next_network = question_limits_check(
        request=factory.post("/", REMOTE_ADDR="2001:db8:1:3::1"), user_id=None
    )

    assert first is None and next_network is None
    assert same_network is not None and same_network.limit == "ip"


def test_the_longest_wait_of_the_exceeded_limits_is_given(settings) -> None:
    settings.CAIRN_CHAT_RATE_LIMIT = "1/m"
    settings.CAIRN_IP_RATE_LIMIT = "1/d"
    request = RequestFactory().post("/", REMOTE_ADDR="203.0.113.8")

    question_limits_check(request=request, user_id=7)
    exceeded = question_limits_check(request=request, user_id=7)

    assert exceeded is not None and exceeded.limit == "ip" and exceeded.retry_after > 60


def test_an_empty_rate_turns_its_limit_off(settings) -> None:
    settings.CAIRN_IP_RATE_LIMIT = ""
    settings.CAIRN_API_KEY_RATE_LIMIT = "100/h"
    request = RequestFactory().post("/", REMOTE_ADDR="203.0.113.8")

    results = [question_limits_check(request=request, user_id=None, api_key_id=1) for _ in range(5)]

    assert results == [None] * 5


# --- window boundaries -------------------------------------------------------------------


def test_a_burst_straddling_a_window_boundary_gets_no_more_than_the_rate(
    settings, hand_clock
) -> None:
    # Issue 16: 104 questions in 10 s from one address all passed a 100/min limit
    settings.CAIRN_IP_RATE_LIMIT = "100/m"
    request = RequestFactory().post("/", REMOTE_ADDR="203.0.113.8")
    results = []
    for i in range(104):
        hand_clock.at(MIDNIGHT + 60 - 5 + i * 10 / 104)
        results.append(question_limits_check(request=request, user_id=None))

    assert results[:100] == [None] * 100
    assert all(r is not None and r.limit == "ip" for r in results[100:])
    assert all(50 <= r.retry_after <= 60 + 6 for r in results[100:] if r is not None)


@pytest.mark.django_db
def test_the_api_holds_the_rate_across_a_window_boundary(help_kb, settings, hand_clock) -> None:
    settings.CAIRN_API_KEY_RATE_LIMIT = "3/m"
    client, _, _ = api_client(help_kb.account, ["answer"])

    hand_clock.at(MIDNIGHT + 60 - 1)
    before = [ask_api(client).status_code for _ in range(3)]
    hand_clock.at(MIDNIGHT + 60 + 1)
    after = [ask_api(client) for _ in range(3)]

    assert before == [200, 200, 200]
    assert [r.status_code for r in after] == [429, 429, 429]
    assert error_of(after[-1])["retry_after"] == retry_after(after[-1]) >= 58


@pytest.mark.django_db
def test_after_the_wait_it_gives_the_next_question_passes(
    help_kb, staff, client, settings, hand_clock
) -> None:
    settings.CAIRN_CHAT_RATE_LIMIT = "2/m"
    client.force_login(staff)
    for _ in range(2):
        ask_in_chat(client, help_kb, **HTMX)
        hand_clock.advance(20)
    refused = ask_in_chat(client, help_kb, **HTMX)

    hand_clock.advance(retry_after(refused))
    after_the_wait = ask_in_chat(client, help_kb, **HTMX)

    assert refused.status_code == 429 and after_the_wait.status_code == 200


# --- the client's address behind proxies ------------------------------------------------


@pytest.mark.parametrize(
    ("proxies", "forwarded_for", "expected"),
    [
        (0, "198.51.100.7", PROXY),  # no proxy trusted: the header is anyone's to write
        (1, "198.51.100.7", "198.51.100.7"),
        (1, "6.6.6.6, 198.51.100.7", "198.51.100.7"),  # the client's own entry is left of ours
        (2, "6.6.6.6, 198.51.100.7, 10.0.0.1", "198.51.100.7"),
        (1, " 2001:db8::7 ", "2001:db8::7"),
        (2, "198.51.100.7", PROXY),  # shorter than the proxies should have made it
        (1, "", PROXY),
        (1, "unknown", PROXY),
    ],
)
def test_the_client_address_is_taken_behind_the_trusted_proxies(
    settings, proxies, forwarded_for, expected
) -> None:
    settings.CAIRN_TRUSTED_PROXIES = proxies
    request = RequestFactory().get("/", REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=forwarded_for)

    assert client_ip(request) == expected


@pytest.mark.django_db
def test_a_spoofed_forwarded_for_does_not_reset_the_quota(help_kb, settings) -> None:
    settings.CAIRN_TRUSTED_PROXIES = 1
    settings.CAIRN_IP_RATE_LIMIT = "2/h"
    client, _, _ = api_client(help_kb.account, ["answer"])

    statuses = [
        ask_api(client, PROXY, HTTP_X_FORWARDED_FOR=f"192.0.2.{i}, 203.0.113.7").status_code
        for i in range(3)
    ]
    other_client = ask_api(client, PROXY, HTTP_X_FORWARDED_FOR="192.0.2.1, 203.0.113.99")

    assert statuses == [200, 200, 429]
    assert other_client.status_code == 200


@pytest.mark.django_db
def test_without_trusted_proxies_the_forwarded_for_header_is_ignored(help_kb, settings) -> None:
    settings.CAIRN_IP_RATE_LIMIT = "2/h"
    client, _, _ = api_client(help_kb.account, ["answer"])

    statuses = [
        ask_api(client, "203.0.113.7", HTTP_X_FORWARDED_FOR=f"192.0.2.{i}").status_code
        for i in range(3)
    ]

    assert statuses == [200, 200, 429]


# --- what a refused question gets back --------------------------------------------------


@pytest.mark.django_db
def test_the_chat_refuses_in_place_for_htmx_saying_when_to_retry(
    help_kb, staff, client, settings
) -> None:
    settings.CAIRN_CHAT_RATE_LIMIT = "1/h"
    client.force_login(staff)
    ask_in_chat(client, help_kb, **HTMX)

    response = ask_in_chat(client, help_kb, **HTMX)

    seconds = retry_after(response)
    assert response.status_code == 429
    assert response["HX-Retarget"] == "#composer-error"
    html = response.content.decode()
    assert "<html" not in html
    assert f"Too many questions in a short time. Try again in {seconds} second" in html


@pytest.mark.django_db
@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "plain form"])
def test_asking_in_a_conversation_over_the_rate_is_a_429_with_retry_after(
    help_kb, staff, client, settings, htmx
) -> None:
    settings.CAIRN_CHAT_RATE_LIMIT = "1/h"
    conversation, _ = conversation_start(
        user_id=staff.pk, knowledge_base=help_kb, text="How do refunds work?"
    )
    client.force_login(staff)
    url = reverse("chat:ask", args=[conversation.pk])
    headers = HTMX if htmx else {}
    allowed = client.post(url, {"question": "And for monthly plans?"}, **headers)
    before = conversation.messages.count()

    response = client.post(url, {"question": "And for annual plans?"}, **headers)

    assert allowed.status_code == (200 if htmx else 302)
    assert response.status_code == 429
    seconds = retry_after(response)
    html = response.content.decode()
    assert f"Try again in {seconds} second" in html
    assert ("<html" in html) is not htmx  # the whole page again without JavaScript
    assert conversation.messages.count() == before


@pytest.mark.django_db
def test_the_whole_page_is_refused_without_javascript(help_kb, staff, client, settings) -> None:
    settings.CAIRN_CHAT_RATE_LIMIT = "1/h"
    client.force_login(staff)
    ask_in_chat(client, help_kb)

    response = ask_in_chat(client, help_kb)

    assert response.status_code == 429
    seconds = retry_after(response)
    html = response.content.decode()
    assert "<html" in html and 'name="question"' in html
    assert f"Try again in {seconds} second" in html


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "body"),
    [
        (ANSWERS, {"question": "How do refunds work?"}),
        (COMPLETIONS, {"model": "-", "messages": [{"role": "user", "content": "Refunds?"}]}),
    ],
    ids=["answers", "chat completions"],
)
def test_the_api_refuses_with_its_error_shape_and_retry_after(
    help_kb, settings, path, body
) -> None:
    settings.CAIRN_API_KEY_RATE_LIMIT = "1/h"
    client, _, _ = api_client(help_kb.account, ["answer"])
    body = {**body, "model": help_kb.slug} if "model" in body else body
    client.post(path, body, format="json")

    response = client.post(path, body, format="json")

    assert response.status_code == 429
    seconds = retry_after(response)
    error = error_of(response)
    assert error["code"] == "rate_limited" and error["retry_after"] == seconds
    assert f"Try again in {seconds} second" in error["message"]
