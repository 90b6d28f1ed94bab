"""The chat in a real browser: headless Chromium against the live ASGI server.

What only a browser can show: htmx's SSE extension appending streamed words and then
swapping in the final answer, the citation link landing on the highlighted passage,
the feedback forms swapping in place, and model output staying inert however it is
cut into stream events. Screenshots of each moment go to test-artifacts/browser/.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from django.contrib.auth.models import AbstractUser
from django.db import connection
from playwright.sync_api import Locator, Page, expect

from chat.models import Feedback
from tests.support.fake_llm import FakeLLMServer, Reply, Respond
from tests.support.prompts import passage_number

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "correct horse battery"  # tests.factories.make_user's
# Generous: the first answer of a test run loads the embedding model.
ANSWER_TIMEOUT_MS = 60_000
ABSTENTION = "I don't have that information in the knowledge base."

# Installed before any page script runs, on every page of the context: after each DOM
# change it notes what the conversation shows, so a test can tell what happened in
# what order (tokens before the final answer) and catch a hostile element that was
# there only for a moment.
ANSWER_RECORDER = """
(() => {
  const snapshots = [];
  window.__answerSnapshots = snapshots;
  new MutationObserver(() => {
    const messages = document.getElementById("messages");
    if (!messages) return;
    const streamed = messages.querySelector(".answer-text.streamed");
    const everything = [...messages.querySelectorAll("*")];
    snapshots.push({
      streamed: streamed ? streamed.innerText : null,
      // htmx settles a swapped-in element with the old one's attributes for a moment,
      // so the final answer is recognised by its content as well as by its class.
      finished: messages.querySelector(
        ".message.assistant:not(.streaming), .message.assistant .answer-text:not(.streamed)"
      ) !== null,
      scripts: messages.querySelectorAll("script").length,
      // Our own icons (the thumbs) are SVG; the answer's text may hold none.
      images: messages.querySelectorAll(".answer-text img, .answer-text svg, img").length,
      javascriptLinks: [...messages.querySelectorAll("a")]
        .filter((a) => a.protocol === "javascript:").length,
      handlers: everything.filter((el) => [...el.attributes].some((at) => /^on/i.test(at.name)))
        .length,
      pwned: window.__pwned === undefined ? null : String(window.__pwned),
    });
  }).observe(document, {
    childList: true, subtree: true, characterData: true, attributes: true,
  });
})();
"""

T = TypeVar("T")


def from_database(read: Callable[[], T]) -> T:
    """``read()`` on a thread without Playwright's event loop (see conftest.py); the
    live server committed what it wrote, so a fresh connection sees it."""
    results: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(read())
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=run, name="database-read")
    thread.start()
    thread.join(timeout=30)
    if errors:
        raise errors[0]
    return results[0]


def log_in(page: Page, user: AbstractUser) -> None:
    """Through the login form, as a person does."""
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(user.get_username())
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/chat/")


def ask(page: Page, question: str) -> None:
    """Type the question and press Enter, which sends it."""
    box = page.get_by_label("Your question")
    box.fill(question)
    box.press("Enter")


def wait_for_streamed_text(page: Page, text: str = "") -> None:
    """Until the answer being written shows ``text`` (any text if empty); checked on
    every animation frame, so a short stream is not missed between two polls."""
    page.wait_for_function(
        """text => {
          const shown = document.querySelector(".answer-text.streamed")?.innerText ?? "";
          return shown.trim() !== "" && shown.includes(text);
        }""",
        arg=text,
        polling="raf",
        timeout=ANSWER_TIMEOUT_MS,
    )


def finished_answer(page: Page) -> Locator:
    answer = page.locator("article.message.assistant:not(.streaming)")
    expect(answer).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
    return answer


def snapshots(page: Page) -> list[dict[str, Any]]:
    return list(page.evaluate("window.__answerSnapshots"))


def test_a_question_streams_its_answer_cites_passages_and_takes_feedback(
    settings, chat_user, page, screenshot
):
    # Given the demo knowledge base, one of its account's staff, and the local answerer
    # writing slowly enough to watch
    settings.CAIRN_EXTRACTIVE_TOKEN_DELAY_MS = 40
    page.add_init_script(ANSWER_RECORDER)

    # When they log in through the form
    log_in(page, chat_user)

    # Then the chat offers the demo knowledge base
    expect(page.locator(".kb-name")).to_contain_text("Ledgerly support")

    # When they ask about the Growth plan's price
    ask(page, "How much is the Growth plan per month?")

    # Then the conversation opens and the answer's words arrive while it is being written
    page.wait_for_url("**/chat/c/*/")
    expect(page.locator(".message.user")).to_contain_text("Growth plan per month")
    wait_for_streamed_text(page)
    screenshot(page, "streaming")
    answer = finished_answer(page)
    timeline = snapshots(page)
    finished_at = next(i for i, s in enumerate(timeline) if s["finished"])
    lengths = [len(s["streamed"]) for s in timeline[:finished_at] if s["streamed"]]
    assert len(lengths) >= 2, f"streamed text seen before the final answer: {lengths}"
    assert lengths == sorted(lengths) and lengths[-1] > lengths[0]

    # And the final answer cites its passages and says how it was composed
    expect(answer.locator(".answer-text")).to_contain_text("$59")
    chips = answer.locator(".answer-text a.cite")
    expect(chips.first).to_be_visible()
    expect(answer.locator("ol.sources li").first).to_contain_text("Billing")
    expect(answer.locator(".note")).to_contain_text("without a language model")
    screenshot(page, "answer-with-citations")

    # When they follow the first citation
    href = chips.first.get_attribute("href") or ""
    chunk_id = href.rsplit("#chunk-", 1)[-1]
    chips.first.click()

    # Then the document opens on the cited passage, highlighted and in view
    page.wait_for_url("**/documents/*/?chunk=*")
    expect(page.locator(f"#chunk-{chunk_id}")).to_have_attribute("aria-current", "location")
    expect(page.locator("mark.cited").first).to_be_in_viewport()
    screenshot(page, "highlighted-passage-in-view", full_page=False)
    screenshot(page, "highlighted-passage")

    # When they come back and give the answer a thumbs down, with a comment
    page.go_back()
    answer = finished_answer(page)
    answer.locator("button[name=rating][value=down]").click()
    answer.get_by_label("What was wrong or missing?").fill("It should mention the yearly price.")
    answer.get_by_role("button", name="Send feedback").click()

    # Then they are thanked, and the rating and the comment are recorded
    expect(answer.get_by_text("Thanks for the feedback.")).to_be_visible()
    expect(answer.locator("button[name=rating][value=down]")).to_have_attribute(
        "aria-pressed", "true"
    )
    screenshot(page, "feedback-given")
    feedback = from_database(lambda: list(Feedback.objects.values_list("rating", "comment")))
    assert feedback == [("down", "It should mention the yearly price.")]


def test_a_question_the_documents_do_not_answer_gets_an_abstention(chat_user, page, screenshot):
    # Given a staff member logged in to the chat of the demo knowledge base
    log_in(page, chat_user)

    # When they ask something no document says
    ask(page, "Does Ledgerly integrate with QuickBooks or Xero?")

    # Then the answer says so, shows the closest passages instead, and cites nothing
    answer = finished_answer(page)
    expect(answer).to_have_class("message assistant status-abstained")
    expect(answer.locator(".answer-text")).to_have_text(ABSTENTION)
    expect(answer.get_by_text("The closest passages found:")).to_be_visible()
    expect(answer.locator(".closest a").first).to_be_visible()
    expect(answer.locator("a.cite")).to_have_count(0)
    expect(answer.locator("ol.sources")).to_have_count(0)
    screenshot(page, "abstention")


GROUNDED = (
    "LDG-409 means the same bank account is already connected in this workspace [1]. "
    "Disconnect it there before connecting it again [1]."
)
HOSTILE = (
    "Before <script>window.__pwned=1</script> middle "
    '<img src=x onerror="window.__pwned=2"> and [a link](javascript:window.__pwned=3) '
    '<a href="javascript:window.__pwned=4">raw link</a> <svg onload="window.__pwned=5"></svg> '
    "end. LDG-409 means the same bank account is already connected in this workspace [1]."
)


def test_hostile_model_output_split_across_stream_events_stays_inert(
    chat_user, fake_model: FakeLLMServer, page, screenshot
):
    # Given a model whose answer carries a script, elements with event handlers and
    # javascript: links, streamed in forty pieces so that the tags are cut across events
    fake_model.default = Reply(text=HOSTILE, chunks=40, chunk_delay=0.03)
    page.add_init_script(ANSWER_RECORDER)
    log_in(page, chat_user)

    # When a question is answered by it
    ask(page, "What does LDG-409 mean when a customer connects a bank account?")
    page.wait_for_url("**/chat/c/*/")
    wait_for_streamed_text(page, "Before")
    screenshot(page, "hostile-streaming")
    answer = finished_answer(page)

    # Then while it streamed, the markup never showed, as elements or as text: the
    # answer's output guards (chat/answering/markup.py, links.py) drop tags, the image
    # and the javascript: link target before they are streamed at all
    assert fake_model.requests, "the answer did not come from the fake model"
    timeline = snapshots(page)
    streaming = [s for s in timeline if s["streamed"] is not None]
    assert any("middle" in s["streamed"] for s in streaming)
    for marker in ("<script", "onerror", "<svg", "javascript:", "<a "):
        assert not any(marker in s["streamed"] for s in streaming), marker
    for snapshot in timeline:
        assert snapshot["scripts"] == snapshot["images"] == 0, snapshot
        assert snapshot["javascriptLinks"] == snapshot["handlers"] == 0, snapshot
        assert snapshot["pwned"] is None, snapshot

    # And the final answer, which keeps the text since its one claim is supported, holds
    # the words of the links and none of the markup
    screenshot(page, "hostile-final")
    expect(answer).to_have_class("message assistant status-done")
    text = answer.locator(".answer-text")
    expect(text).to_contain_text("a link")
    expect(text).to_contain_text("raw link")
    expect(text).not_to_contain_text("<script>")
    expect(text).not_to_contain_text("javascript:window.__pwned=3")
    expect(text.locator("a.cite")).to_have_count(1)
    messages = page.locator("#messages")
    expect(messages.locator("script")).to_have_count(0)
    expect(messages.locator("img, .answer-text svg")).to_have_count(0)
    expect(messages.locator("a[href^='javascript' i]")).to_have_count(0)
    assert page.evaluate("window.__pwned") is None

    # And following any link the answer holds (other than a citation) runs nothing
    for link in answer.locator(".answer-text a:not(.cite)").all():
        link.click()
        assert page.evaluate("window.__pwned") is None


def test_the_first_words_show_while_the_model_is_still_answering(
    chat_user, fake_model: FakeLLMServer, page, screenshot
):
    # Given a model that takes a while between the pieces of its answer
    fake_model.default = Reply(text=GROUNDED, chunks=10, chunk_delay=0.25)
    log_in(page, chat_user)

    # When a question is asked
    ask(page, "What does LDG-409 mean when a customer connects a bank account?")
    page.wait_for_url("**/chat/c/*/")
    wait_for_streamed_text(page)

    # Then the first words are on screen before the model has finished its answer
    assert fake_model.requests and fake_model.streams_completed == 0
    screenshot(page, "first-words")
    finished_answer(page)
    assert fake_model.streams_completed == 1


UNCITED = "Ledgerly also e-mails the workspace owner whenever a bank account is connected twice."
WRONGLY_CITED = "LDG-409 errors clear by themselves after 48 hours."


def mixed_model(body: dict) -> Reply:
    """Three supported sentences, one citing nothing, one whose citation does not back it
    (the passage states no "48")."""
    ldg409 = passage_number(body, "LDG-409")
    ldg422 = passage_number(body, "LDG-422")
    return Reply(
        text=(
            f"LDG-409 means the same bank account is already connected in this workspace "
            f"[{ldg409}]. Use the existing connection: each bank account can be connected "
            f"only once per workspace [{ldg409}]. {UNCITED} {WRONGLY_CITED[:-1]} [{ldg409}]. "
            f"LDG-422 means the bank requires additional verification [{ldg422}]."
        ),
        chunks=30,
        chunk_delay=0.02,
    )


def test_sentences_the_sources_do_not_support_are_marked_in_the_answer(
    chat_user, fake_model: FakeLLMServer, page, screenshot
):
    # Given a model whose answer mixes supported sentences with one that cites nothing
    # and one whose citation does not back it
    fake_model.default = Respond(mixed_model)
    log_in(page, chat_user)

    # When a question is answered by it
    ask(page, "What does LDG-409 mean when a customer connects a bank account?")
    page.wait_for_url("**/chat/c/*/")
    answer = finished_answer(page)

    # Then the answer stands, and exactly the two unsupported sentences are dimmed, each
    # followed by a note in words
    expect(answer).to_have_class("message assistant status-done")
    marked = answer.locator(".answer-text .unsupported")
    expect(marked).to_have_count(2)
    expect(marked.nth(0)).to_have_text(UNCITED)
    expect(marked.nth(1)).to_have_text(WRONGLY_CITED)
    notes = answer.locator(".answer-text .unsupported-note")
    expect(notes).to_have_count(2)
    for index in range(2):
        expect(notes.nth(index)).to_be_visible()
        expect(notes.nth(index)).to_have_text("This sentence was not found in the sources")
    expect(answer.locator(".answer-text")).to_contain_text(
        "not found in the sources", use_inner_text=True
    )
    # The supported sentences keep their citation chips and their full colour.
    expect(answer.locator(".answer-text a.cite")).to_have_count(3)
    colours = page.evaluate(
        """() => {
          const text = document.querySelector(".message.assistant .answer-text");
          const dimmed = text.querySelector(".unsupported");
          return [getComputedStyle(text).color, getComputedStyle(dimmed).color];
        }"""
    )
    assert colours[0] != colours[1], colours
    answer.scroll_into_view_if_needed()
    screenshot(page, "unsupported-sentences-marked", full_page=False)
    screenshot(page, "unsupported-sentences-marked-page")
