"""Admin for budgets and the review list of flagged questions (the usage ledger and the
gateway's routes are in llm/admin/); the feedback loop's review queue and golden cases
are in chat/admin/feedback_loop.py."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Count, F, Sum
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html_join

from chat.admin import feedback_loop  # noqa: F401  (registers the review queue and golden cases)
from chat.models import Budget, BudgetWindow, FlaggedQuestion, Message
from chat.services.budgets import window_bounds
from kb.admin.audit import AuditedAdmin
from kb.admin.scoping import AccountScopedAdmin
from llm.models import LlmCall


@admin.register(Budget)
class BudgetAdmin(AuditedAdmin, AccountScopedAdmin):
    """Caps per account (or user), with what the current window has spent against them."""

    list_display = [
        "account", "who", "period", "token_cap", "cost_cap", "soft_threshold",
        "tokens_used", "cost_used", "resets",
    ]  # fmt: skip
    list_filter = ["period"]
    list_select_related = ["account", "user"]
    readonly_fields = ["spent_by"]

    @admin.display(description="for")
    def who(self, budget: Budget) -> str:
        return budget.user.get_username() if budget.user else "whole account"

    def _current(self, budget: Budget) -> BudgetWindow | None:
        start, _ = window_bounds(budget.period, timezone.now())
        return budget.windows.filter(starts_at=start).first()

    @admin.display(description="tokens this window")
    def tokens_used(self, budget: Budget) -> str:
        window = self._current(budget)
        used = (window.tokens_spent + window.tokens_reserved) if window else 0
        return f"{used:,} of {budget.token_cap:,}" if budget.token_cap else f"{used:,}"

    @admin.display(description="cost this window")
    def cost_used(self, budget: Budget) -> str:
        window = self._current(budget)
        used = (window.cost_spent + window.cost_reserved) if window else 0
        return f"${used:.4f} of ${budget.cost_cap:.2f}" if budget.cost_cap else f"${used:.4f}"

    @admin.display(description="resets")
    def resets(self, budget: Budget) -> str:
        return f"{window_bounds(budget.period, timezone.now())[1]:%Y-%m-%d %H:%M %Z}"

    @admin.display(description="who spent what this window")
    def spent_by(self, budget: Budget) -> str:
        """From the usage ledger: tokens and cost per user (and API calls) this window."""
        if budget.pk is None:
            return "-"
        start, end = window_bounds(budget.period, timezone.now())
        calls = LlmCall.objects.filter(
            account_id=budget.account_id, created_at__gte=start, created_at__lt=end
        )
        if budget.user_id:
            calls = calls.filter(user_id=budget.user_id)
        rows = (
            calls.values("user__username")
            .annotate(
                tokens=Sum(F("input_tokens") + F("output_tokens")), cost=Sum("cost"),
                answers=Count("request_id", distinct=True),
            )
            .order_by("-cost", "-tokens")[:20]
        )  # fmt: skip
        if not rows:
            return "Nothing spent yet."
        return format_html_join(
            "\n", "<div>{}: {} tokens, ${} ({} requests)</div>",
            (
                (row["user__username"] or "API keys and system", f"{row['tokens'] or 0:,}",
                 f"{row['cost'] or 0:.4f}", row["answers"])
                for row in rows
            ),
        )  # fmt: skip


@admin.register(FlaggedQuestion)
class FlaggedQuestionAdmin(AuditedAdmin, AccountScopedAdmin):
    """Questions the prompt-injection detector flagged (accounts whose injection action
    is "flag"): answered, and kept here for someone to look at. Read-only: the record
    of what was asked is not edited."""

    account_lookup = "conversation__account_id"
    list_display = [
        "question_text", "injection_score", "asked_by", "account", "answer", "created_at",
    ]  # fmt: skip
    list_filter = [("conversation__account", admin.RelatedOnlyFieldListFilter), "created_at"]
    search_fields = ["content"]
    date_hierarchy = "created_at"
    ordering = ["-created_at"]
    list_select_related = ["conversation__account", "conversation__user", "conversation__api_key"]
    fields = readonly_fields = (
        "content", "injection_score", "asked_by", "account", "answer", "created_at",
        "conversation",
    )  # fmt: skip

    def get_queryset(self, request: HttpRequest) -> Any:
        return (
            super()
            .get_queryset(request)
            .filter(flagged=True, role=Message.Role.USER)
            .prefetch_related("answers")
        )

    @admin.display(description="Question")
    def question_text(self, obj: Message) -> str:
        if obj.purged_at is not None:
            return "(removed under the retention policy)"
        text = " ".join(obj.content.split())
        return text if len(text) <= 120 else f"{text[:119]}…"

    @admin.display(description="Asked by")
    def asked_by(self, obj: Message) -> str:
        conversation = obj.conversation
        if conversation.user is not None:
            return str(conversation.user)
        return str(conversation.api_key) if conversation.api_key else "—"

    @admin.display(description="Account", ordering="conversation__account__name")
    def account(self, obj: Message) -> str:
        return str(obj.conversation.account)

    @admin.display(description="Answer")
    def answer(self, obj: Message) -> str:
        answers = [a for a in obj.answers.all() if not a.superseded] or list(obj.answers.all())
        return answers[-1].get_status_display() if answers else "—"

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
