"""How answers are shown: citation links and the words for each kind of problem."""

from __future__ import annotations

from django.urls import reverse
from django.utils.safestring import SafeString

from chat.models import Citation, Message
from chat.rendering import CitationLink, answer_html

PROBLEM_TEXTS = {
    Message.Problem.NOTHING_RELEVANT: "Nothing in the knowledge base matches this question.",
    Message.Problem.PROVIDERS_DOWN: (
        "The language models are unavailable right now. Please try again in a few minutes."
    ),
    Message.Problem.INTERRUPTED: (
        "The answer was interrupted: the language model stopped responding. "
        "What is shown may be incomplete."
    ),
    Message.Problem.BUDGET_EXHAUSTED: (
        "Your account has used its answer budget for now. An administrator can raise it."
    ),
    Message.Problem.RATE_LIMITED: "Too many questions in a short time. Please wait a moment.",
    Message.Problem.INVALID_QUESTION: "This question cannot be answered as asked.",
    Message.Problem.INTERNAL: "Something went wrong while answering. Please try again.",
    Message.Problem.ABANDONED: "Lost: the server writing this answer stopped before it finished.",
}


def problem_text(message: Message) -> str:
    if message.status == Message.Status.STOPPED:
        return "Stopped."
    return PROBLEM_TEXTS.get(Message.Problem(message.problem), "") if message.problem else ""


def purged_text(message: Message) -> str:
    """What stands in for a message whose text the retention policy removed ("" otherwise)."""
    if message.purged_at is None:
        return ""
    what = "Question" if message.role == Message.Role.USER else "Answer"
    # The age at purging, not today's setting: an earlier policy or `purge_conversations
    # --days` may have removed it, and a backlog purged at once is older than the period.
    days = (message.purged_at - message.created_at).days
    if days < 1:
        return f"{what} removed under the retention policy."
    return f"{what} removed after {days} day{'s' if days != 1 else ''} under the retention policy."


def citation_url(citation: Citation) -> str:
    """The cited passage in its document (or the document, if the passage is gone)."""
    if citation.document_id is None:
        return ""
    url = reverse("kb:document_detail", args=[citation.document_id])
    if citation.chunk_id is None:
        return url
    return f"{url}?chunk={citation.chunk_id}#chunk-{citation.chunk_id}"


def citation_title(citation: Citation) -> str:
    return " › ".join(part for part in (citation.document_title, citation.heading_path) if part)


def unsupported_spans(message: Message) -> list[tuple[int, int]]:
    """Where the answer's text holds the sentences the citation check could not support."""
    spans = []
    for sentence in message.sentences or ():
        start, end = sentence.get("start"), sentence.get("end")
        if sentence.get("supported") is False and isinstance(start, int) and isinstance(end, int):
            spans.append((start, end))
    return spans


def message_html(message: Message) -> SafeString:
    """The answer's text with chips for the citations that stood the check, and its
    unsupported sentences marked."""
    links = {
        c.number: CitationLink(citation_url(c), citation_title(c))
        for c in message.citations.all()
        if c.kind == Citation.Kind.CITED
    }
    return answer_html(message.content, links, unsupported_spans(message))
