"""Template helpers for answers."""

from __future__ import annotations

from django import template
from django.utils.safestring import SafeString

from chat.models import Citation, Message
from chat.presentation import (
    citation_title,
    citation_url,
    message_html,
    problem_text,
    purged_text,
)

register = template.Library()


@register.simple_tag
def answer_body(message: Message) -> SafeString:
    return message_html(message)


@register.filter
def problem(message: Message) -> str:
    return problem_text(message)


@register.filter
def purged(message: Message) -> str:
    return purged_text(message)


@register.filter
def passage_url(citation: Citation) -> str:
    return citation_url(citation)


@register.filter
def passage_title(citation: Citation) -> str:
    return citation_title(citation)


@register.filter
def cited(message: Message) -> list[Citation]:
    return [c for c in message.citations.all() if c.kind == Citation.Kind.CITED]


@register.filter
def closest(message: Message) -> list[Citation]:
    return [c for c in message.citations.all() if c.kind == Citation.Kind.CLOSEST]
