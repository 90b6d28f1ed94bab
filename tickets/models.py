"""Tickets: a question handed to a person, with what Cairn knew when it was handed over.

A ticket keeps snapshots (question, answer, sources) besides links to the conversation, so
that it still reads right after the conversation is purged or the documents change.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from chat.models import Conversation, Message
from kb.models import Account, ApiKey

DEFAULT_CATEGORIES = ["billing", "technical", "account", "other"]


def default_categories() -> list[str]:
    return list(DEFAULT_CATEGORIES)


class Urgency(models.TextChoices):
    LOW = "low", "Low"
    NORMAL = "normal", "Normal"
    HIGH = "high", "High"
    URGENT = "urgent", "Urgent"


class Sentiment(models.TextChoices):
    NEGATIVE = "negative", "Negative"
    NEUTRAL = "neutral", "Neutral"
    POSITIVE = "positive", "Positive"


class TicketSettings(models.Model):
    """One account's escalation settings (created on first use with the defaults)."""

    account = models.OneToOneField(
        Account, on_delete=models.CASCADE, related_name="ticket_settings"
    )
    categories = models.JSONField(
        default=default_categories,
        help_text='Ticket categories the classifier chooses from, e.g. ["billing", '
        '"technical", "account", "other"]. The last one is the catch-all.',
    )
    open_on_abstention = models.BooleanField(
        default=False,
        help_text="Open a ticket automatically when an answer says the documents don't say.",
    )
    open_below_supported_share = models.FloatField(
        null=True, blank=True,
        help_text="Also open one when an answer's share of supported sentences is below this "
        "(0–1). Empty: never for that reason.",
    )  # fmt: skip
    default_queue = models.ForeignKey(
        "Queue", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="Where a ticket goes when no routing rule matches.",
    )  # fmt: skip

    class Meta:
        verbose_name = "ticket settings"
        verbose_name_plural = "ticket settings"

    def __str__(self) -> str:
        return f"Ticket settings of {self.account}"


class Queue(models.Model):
    """A team that works tickets; its members are notified of new ones."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=60)
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="ticket_queues"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["account", "slug"], name="tickets_queue_unique_slug")
        ]

    def __str__(self) -> str:
        return self.name


class RoutingRule(models.Model):
    """Category and urgency → queue. Rules are tried by ``position``; blank matches any."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="+")
    position = models.PositiveSmallIntegerField(default=100)
    category = models.CharField(max_length=50, blank=True, help_text="Blank: any category.")
    urgency = models.CharField(
        max_length=10, choices=Urgency.choices, blank=True, help_text="Blank: any urgency."
    )
    queue = models.ForeignKey(Queue, on_delete=models.CASCADE, related_name="rules")

    class Meta:
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return f"{self.category or 'any'}/{self.urgency or 'any'} → {self.queue}"


class Ticket(models.Model):
    class Status(models.TextChoices):
        OPEN = "open", "Open"
        ASSIGNED = "assigned", "Assigned"
        WAITING = "waiting", "Waiting on the customer"
        SOLVED = "solved", "Solved"

    class Origin(models.TextChoices):
        ASKED = "asked", "Talk to a person"
        ABSTENTION = "abstention", "Answer abstained"
        LOW_SUPPORT = "low_support", "Answer poorly supported"
        THUMBS_DOWN = "thumbs_down", "Thumbs down with a comment"
        API = "api", "REST API"

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="+")
    origin = models.CharField(max_length=12, choices=Origin.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    conversation = models.ForeignKey(
        Conversation, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    question_message = models.ForeignKey(
        Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    answer_message = models.ForeignKey(
        Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    asker = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )  # fmt: skip
    api_key = models.ForeignKey(
        ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    subject = models.CharField(max_length=200)
    question = models.TextField(help_text="What the asker wants, as they wrote it.")
    answer = models.TextField(blank=True, help_text="Cairn's answer, if there was one.")
    sources = models.JSONField(
        default=list, blank=True,
        help_text="Cairn's sources: [{chunk_id, document_id, title, heading_path, excerpt}].",
    )  # fmt: skip
    comment = models.TextField(blank=True, help_text="The asker's note (thumbs-down comment).")

    # Classification (tickets.classification): what, how urgent, how the asker feels.
    category = models.CharField(max_length=50, blank=True)
    urgency = models.CharField(max_length=10, choices=Urgency.choices, blank=True)
    sentiment = models.CharField(max_length=10, choices=Sentiment.choices, blank=True)
    confidence = models.FloatField(null=True, blank=True, help_text="Of the category, 0–1.")
    classified_by = models.CharField(
        max_length=100, blank=True, help_text='"local", or the provider/model that classified.'
    )
    classified_at = models.DateTimeField(null=True, blank=True)

    queue = models.ForeignKey(
        Queue, null=True, blank=True, on_delete=models.SET_NULL, related_name="tickets"
    )
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="assigned_tickets",
    )  # fmt: skip

    draft_reply = models.TextField(blank=True, help_text="Cairn's drafted reply, cited.")
    draft_citations = models.JSONField(default=list, blank=True)
    draft_status = models.CharField(
        max_length=10, blank=True,
        help_text='"" (not asked), "pending", "ready", "skipped" (urgent) or "failed".',
    )  # fmt: skip

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    first_response_at = models.DateTimeField(null=True, blank=True)
    solved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(
                fields=["account", "status", "-created_at"], name="tickets_account_status"
            ),
            models.Index(fields=["queue", "status"], name="tickets_queue_status"),
            # The inbox's live stream asks every second what changed since it last looked.
            models.Index(fields=["account", "updated_at"], name="tickets_account_updated"),
        ]
        constraints = [
            # One ticket per question: opening again (a second thumbs-down, "Talk to a
            # person" after an automatic ticket) finds it (tickets.services.tickets).
            models.UniqueConstraint(
                fields=["question_message"],
                condition=models.Q(question_message__isnull=False),
                name="tickets_ticket_one_per_question",
            )
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.subject}"


class TicketEvent(models.Model):
    """The ticket's timeline: replies to the asker, internal notes, changes."""

    class Kind(models.TextChoices):
        CREATED = "created", "Created"
        CLASSIFIED = "classified", "Classified"
        ROUTED = "routed", "Routed"
        ASSIGNED = "assigned", "Assigned"
        STATUS = "status", "Status changed"
        NOTE = "note", "Internal note"
        REPLY = "reply", "Reply to the asker"

    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=12, choices=Kind.choices)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )  # fmt: skip
    body = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} on ticket {self.ticket_id}"


class ClassificationCacheEntry(models.Model):
    """A classification kept per account for identical text (and the same categories)."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=64, help_text="SHA-256 of the text and the categories.")
    result = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["account", "key"], name="tickets_classification_cache_unique"
            )
        ]

    def __str__(self) -> str:
        return f"Classification {self.key[:12]}"
