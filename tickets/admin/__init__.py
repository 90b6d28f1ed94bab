"""Admin of escalation: queues and their members, routing rules, each account's ticket
settings, and tickets (read-only: staff work them in the inbox, whose actions leave events
on the timeline; an edit here would leave none).

Tenant-scoped like every admin page (``AccountScopedAdmin``): an account's admins manage
its queues, rules and settings, its staff view them; a queue's members, a rule's queue and
the default queue must be of the row's own account.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest

from kb.admin.audit import AuditedAdmin
from kb.admin.scoping import AccountScopedAdmin
from tickets.models import Queue, RoutingRule, Ticket, TicketEvent, TicketSettings


@admin.register(Queue)
class QueueAdmin(AuditedAdmin, AccountScopedAdmin):
    list_display = ["name", "slug", "account", "member_count", "open_tickets"]
    list_filter = [("account", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    filter_horizontal = ["members"]
    list_select_related = ["account"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                member_total=Count("members", distinct=True),
                open_total=Count(
                    "tickets", filter=~Q(tickets__status=Ticket.Status.SOLVED), distinct=True
                ),
            )
        )

    @admin.display(description="members", ordering="member_total")
    def member_count(self, queue: Queue) -> int:
        return int(getattr(queue, "member_total", 0))

    @admin.display(description="open tickets", ordering="open_total")
    def open_tickets(self, queue: Queue) -> int:
        return int(getattr(queue, "open_total", 0))


@admin.register(RoutingRule)
class RoutingRuleAdmin(AuditedAdmin, AccountScopedAdmin):
    """Category and urgency → queue, tried by position; blank matches any."""

    list_display = ["position", "account", "category_shown", "urgency_shown", "queue"]
    list_display_links = ["category_shown"]
    list_editable = ["position"]
    list_filter = [("account", admin.RelatedOnlyFieldListFilter), "urgency"]
    list_select_related = ["account", "queue"]
    ordering = ["account", "position", "id"]

    @admin.display(description="category", ordering="category")
    def category_shown(self, rule: RoutingRule) -> str:
        return rule.category or "any"

    @admin.display(description="urgency", ordering="urgency")
    def urgency_shown(self, rule: RoutingRule) -> str:
        return rule.get_urgency_display() if rule.urgency else "any"


@admin.register(TicketSettings)
class TicketSettingsAdmin(AuditedAdmin, AccountScopedAdmin):
    list_display = [
        "account", "open_on_abstention", "open_below_supported_share", "default_queue",
    ]  # fmt: skip
    list_select_related = ["account", "default_queue"]
    fields = [
        "account", "categories", "open_on_abstention", "open_below_supported_share",
        "default_queue",
    ]  # fmt: skip


class TicketEventInline(admin.TabularInline):
    model = TicketEvent
    extra = 0
    can_delete = False
    fields = ("created_at", "kind", "author", "body", "data")
    readonly_fields = fields
    ordering = ["created_at", "id"]

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Shown only on a ticket's page, which TicketAdmin has already scoped.
        return obj is not None

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Ticket)
class TicketAdmin(AuditedAdmin, AccountScopedAdmin):
    """Every ticket with its timeline, to look up; worked in the staff inbox."""

    list_display = [
        "id", "subject", "account", "status", "origin", "category", "urgency", "queue",
        "assignee", "created_at", "first_response_at", "solved_at",
    ]  # fmt: skip
    list_display_links = ["id", "subject"]
    list_filter = [
        "status", "origin", "urgency", ("queue", admin.RelatedOnlyFieldListFilter),
        ("account", admin.RelatedOnlyFieldListFilter),
    ]  # fmt: skip
    search_fields = ["subject", "question"]
    date_hierarchy = "created_at"
    list_select_related = ["account", "queue", "assignee"]
    inlines = [TicketEventInline]
    fieldsets = [
        (None, {"fields": ["account", "subject", "status", "origin", "queue", "assignee"]}),
        ("What was asked", {"fields": ["question", "comment", "answer", "sources", "asker",
                                       "api_key", "conversation"]}),
        ("Classification", {"fields": ["category", "urgency", "sentiment", "confidence",
                                       "classified_by", "classified_at"]}),
        ("Drafted reply", {"fields": ["draft_status", "draft_reply", "draft_citations"]}),
        ("Times", {"fields": ["created_at", "updated_at", "first_response_at", "solved_at"]}),
    ]  # fmt: skip

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [
            field.name for field in Ticket._meta.fields
            if field.name not in ("id", "question_message", "answer_message")
        ]  # fmt: skip

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # An account's admins may delete its tickets (say, at a customer's request).
        return AccountScopedAdmin.has_change_permission(self, request, obj)
