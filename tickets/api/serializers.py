"""What the tickets API returns: a ticket in a list, a ticket with its timeline, an event."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from kb.api.serializers import BlankAsNullCharField
from tickets.models import Ticket, TicketEvent


class QueueReferenceSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    slug = serializers.CharField()
    name = serializers.CharField()


class SourceSerializer(serializers.Serializer):
    """A passage Cairn's answer cited (or, when it abstained, one of the closest)."""

    number = serializers.IntegerField(required=False, help_text="The [n] of the answer.")
    chunk_id = serializers.IntegerField(allow_null=True)
    document_id = serializers.IntegerField(allow_null=True)
    title = serializers.CharField()
    heading_path = serializers.CharField(allow_blank=True)
    excerpt = serializers.CharField(allow_blank=True)


class TicketSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    account = serializers.CharField(source="account.slug", help_text="The account's slug.")
    origin = serializers.ChoiceField(choices=Ticket.Origin.choices)
    status = serializers.ChoiceField(choices=Ticket.Status.choices)
    subject = serializers.CharField()
    question = serializers.CharField()
    category = BlankAsNullCharField(help_text="Null until the ticket is classified.")
    urgency = BlankAsNullCharField(help_text="low, normal, high or urgent; null until classified.")
    sentiment = BlankAsNullCharField(
        help_text="negative, neutral or positive; null until classified."
    )
    confidence = serializers.FloatField(allow_null=True, help_text="Of the category, 0–1.")
    classified_by = BlankAsNullCharField(help_text='"local", or the provider/model.')
    classified_at = serializers.DateTimeField(allow_null=True)
    queue = serializers.SerializerMethodField()
    assignee = serializers.SerializerMethodField()
    conversation_id = serializers.IntegerField(allow_null=True)
    draft_status = BlankAsNullCharField(
        help_text="pending, ready, skipped (urgent) or failed; null when none was asked for."
    )
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    first_response_at = serializers.DateTimeField(allow_null=True)
    solved_at = serializers.DateTimeField(allow_null=True)

    @extend_schema_field(QueueReferenceSerializer(allow_null=True))
    def get_queue(self, ticket: Ticket) -> dict[str, Any] | None:
        queue = ticket.queue
        return None if queue is None else {"id": queue.pk, "slug": queue.slug, "name": queue.name}

    @extend_schema_field(serializers.CharField(allow_null=True, help_text="A user name."))
    def get_assignee(self, ticket: Ticket) -> str | None:
        return ticket.assignee.get_username() if ticket.assignee is not None else None


class TicketEventSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=TicketEvent.Kind.choices)
    author = serializers.SerializerMethodField()
    body = serializers.CharField(allow_blank=True)
    # The event's "data" key shadows Serializer.data for the type checker only: this is
    # an output-only nested serializer, whose own .data is never read.
    data = serializers.DictField(  # type: ignore[assignment]
        help_text="What changed: from/to, the classification, the queue…"
    )
    created_at = serializers.DateTimeField()

    @extend_schema_field(serializers.CharField(allow_null=True, help_text="A user name."))
    def get_author(self, event: TicketEvent) -> str | None:
        return event.author.get_username() if event.author is not None else None


class TicketDetailSerializer(TicketSerializer):
    answer = serializers.CharField(allow_blank=True, help_text="Cairn's answer, if any.")
    sources = SourceSerializer(many=True)
    comment = serializers.CharField(allow_blank=True, help_text="The asker's comment.")
    draft_reply = serializers.CharField(allow_blank=True)
    events = TicketEventSerializer(many=True, help_text="The timeline, internal notes included.")
