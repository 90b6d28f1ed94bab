"""Admin of the feedback loop: the review queue of thumbs-down answers, where a reviewer
turns one into a golden case, and the golden cases with their last verdict.

Imported by chat/admin/__init__.py, so Django's admin autodiscovery registers these too.
"""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join

from chat.models import Feedback, FeedbackReview, GoldenCase, Message
from chat.selectors.golden_cases import GoldenCaseDraft, feedback_for_review, golden_case_draft
from chat.services.golden_cases import GoldenCaseRejected, golden_case_create, golden_cases_run
from kb.admin.audit import AuditedAdmin
from kb.admin.scoping import AccountScopedAdmin
from kb.models import Document

_PURGED = "(removed under the retention policy)"


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else f"{text[: limit - 1]}…"


_VERDICTS = {
    None: ("not run", "#666"),
    True: ("passes now", "#2e7d32"),
    False: ("fails now", "#c62828"),
}


def _verdict_html(passed: bool | None) -> str:
    label, colour = _VERDICTS[passed]
    return format_html('<span class="golden-verdict" style="color:{}">{}</span>', colour, label)


class _GoldenCaseMadeFilter(admin.SimpleListFilter):
    title = "golden case"
    parameter_name = "golden_case"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("no", "Not made yet"), ("yes", "Made")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() in ("yes", "no"):
            return queryset.filter(golden_case_id__isnull=self.value() == "no")
        return queryset


@admin.register(FeedbackReview)
class FeedbackReviewAdmin(AuditedAdmin, AccountScopedAdmin):
    """Thumbs-down answers, newest first, read-only; each row offers to make a golden case
    of it (a form with sensible defaults and one Save) or shows the case it became."""

    account_lookup = "message__conversation__account_id"
    list_display = [
        "question_text", "answer_text", "comment_text", "given_by", "rated_at",
        "knowledge_base", "sources", "golden_case",
    ]  # fmt: skip
    list_filter = [
        _GoldenCaseMadeFilter,
        ("message__conversation__knowledge_base", admin.RelatedOnlyFieldListFilter),
        "updated_at",
    ]
    search_fields = ["comment", "message__content", "message__question__content"]
    ordering = ["-updated_at", "-id"]
    fields = readonly_fields = (
        "question_text", "answer_full", "status", "comment", "given_by", "rated_at",
        "knowledge_base", "sources", "golden_case",
    )  # fmt: skip

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return feedback_for_review(feedback=super().get_queryset(request))

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def _may_make_cases(self, request: HttpRequest, feedback: Feedback) -> bool:
        # Making a case is a write: the account's admins, as for any change.
        return AccountScopedAdmin.has_change_permission(self, request, feedback)

    # --- columns -----------------------------------------------------------------------

    @admin.display(description="Question")
    def question_text(self, obj: Feedback) -> str:
        question = obj.message.question
        if question is None:
            return "—"
        return _PURGED if question.purged_at else _short(question.content)

    @admin.display(description="Answer")
    def answer_text(self, obj: Feedback) -> str:
        answer = obj.message
        if answer.purged_at:
            return _PURGED
        if answer.status != Message.Status.DONE:
            return f"{answer.get_status_display()}: {_short(answer.content, 120)}"
        return _short(answer.content)

    @admin.display(description="Answer")
    def answer_full(self, obj: Feedback) -> str:
        return _PURGED if obj.message.purged_at else obj.message.content

    @admin.display(description="Answer status")
    def status(self, obj: Feedback) -> str:
        return obj.message.get_status_display()

    @admin.display(description="Comment")
    def comment_text(self, obj: Feedback) -> str:
        return _short(obj.comment, 200) or "—"

    @admin.display(description="Given by")
    def given_by(self, obj: Feedback) -> str:
        if obj.user is not None:
            return obj.user.get_username()
        return f"API key {obj.api_key.prefix}" if obj.api_key else "—"

    @admin.display(description="When", ordering="updated_at")
    def rated_at(self, obj: Feedback) -> Any:
        return obj.updated_at

    @admin.display(description="Knowledge base")
    def knowledge_base(self, obj: Feedback) -> str:
        conversation = obj.message.conversation
        return f"{conversation.account} / {conversation.knowledge_base}"

    @admin.display(description="Sources")
    def sources(self, obj: Feedback) -> str:
        citations = list(obj.message.citations.all())
        if not citations:
            return "—"
        return format_html_join(
            "\n", "<div>{}{} {}</div>",
            (
                (
                    "closest: " if c.kind == c.Kind.CLOSEST else "",
                    f"[{c.number}]",
                    c.document_title + (f" · {c.heading_path}" if c.heading_path else ""),
                )
                for c in citations
            ),
        )  # fmt: skip

    @admin.display(description="Golden case")
    def golden_case(self, obj: Feedback) -> str:
        make_url = reverse("admin:chat_feedbackreview_golden_case", args=[obj.pk])
        case_id = getattr(obj, "golden_case_id", None)
        if case_id is None:
            return format_html('<a class="button" href="{}">Make golden case</a>', make_url)
        case_url = reverse("admin:chat_goldencase_change", args=[case_id])
        return format_html(
            '<a href="{}">Golden case #{}</a>: {} · <a href="{}">edit</a>',
            case_url, case_id, _verdict_html(getattr(obj, "golden_case_passed", None)),
            make_url,
        )  # fmt: skip

    # --- making a golden case -----------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        make_case = path(
            "<int:feedback_id>/golden-case/",
            self.admin_site.admin_view(self.golden_case_view),
            name="chat_feedbackreview_golden_case",
        )
        return [make_case, *super().get_urls()]

    def golden_case_view(self, request: HttpRequest, feedback_id: int) -> HttpResponse:
        """The form of one golden case, filled in from the thumbs-down; Save makes it (or
        updates the case this question already has)."""
        feedback = get_object_or_404(self.get_queryset(request), pk=feedback_id)
        if not self._may_make_cases(request, feedback):
            raise PermissionDenied
        draft = golden_case_draft(feedback=feedback)
        form = GoldenCaseForm(request.POST or None, draft=draft)
        if request.method == "POST" and form.is_valid():
            try:
                # The case and its audit row commit together, as on any admin page.
                with transaction.atomic():
                    saved = golden_case_create(
                        answer=feedback.message, created_by_id=request.user.pk,
                        **form.cleaned_data,
                    )  # fmt: skip
                    change = self.construct_change_message(request, form, None, saved.created)
                    if saved.created:
                        self.log_addition(request, saved.case, change)
                    elif saved.changed:
                        self.log_change(request, saved.case, change)
            except GoldenCaseRejected as exc:
                form.add_error(None, str(exc))
            else:
                verb = "made" if saved.created else "updated" if saved.changed else "unchanged"
                self.message_user(
                    request,
                    format_html(
                        'Golden case <a href="{}">#{}</a> {}. Run it from the golden cases '
                        "list, or with manage.py evaluate --from-db.",
                        reverse("admin:chat_goldencase_change", args=[saved.case.pk]),
                        saved.case.pk,
                        verb,
                    ),
                    messages.SUCCESS,
                )
                return redirect("admin:chat_feedbackreview_changelist")
        context = {
            **self.admin_site.each_context(request),
            "title": "Make golden case" if draft.case is None else "Edit golden case",
            "opts": self.opts,
            "feedback": feedback,
            "draft": draft,
            "form": form,
        }
        return TemplateResponse(request, "admin/chat/feedbackreview/golden_case.html", context)


class _DocumentChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return f"{obj.title} ({obj.source})"


class GoldenCaseForm(forms.Form):
    question = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 80}),
        help_text="Asked on its own, without the conversation: make a follow-up stand alone.",
    )
    expected_answer = forms.CharField(
        required=False, max_length=500, label="Expected text",
        widget=forms.TextInput(attrs={"size": 60}),
        help_text="Words the right answer contains, as the documents put them (e.g. a price "
        "or a limit); case and spacing are ignored.",
    )  # fmt: skip
    expected_source = _DocumentChoiceField(
        queryset=Document.objects.none(), required=False, empty_label="(any document)",
        help_text="A document the right answer cites: one the answer cited or found closest.",
    )  # fmt: skip
    expect_abstention = forms.BooleanField(
        required=False, label="Should say it doesn't know",
        help_text="The documents do not answer this; the right answer says so.",
    )  # fmt: skip

    def __init__(self, data: Any = None, *, draft: GoldenCaseDraft) -> None:
        initial = {
            "question": draft.question,
            "expected_answer": draft.expected_answer,
            "expected_source": draft.expected_source.pk if draft.expected_source else None,
            "expect_abstention": draft.expect_abstention,
        }
        super().__init__(data, initial=initial)
        # Only the draft's documents: they are of this answer's account and knowledge base.
        field = cast(forms.ModelChoiceField, self.fields["expected_source"])
        field.queryset = Document.objects.filter(pk__in=[d.pk for d in draft.sources])


@admin.register(GoldenCase)
class GoldenCaseAdmin(AuditedAdmin, AccountScopedAdmin):
    """The golden cases with their last verdict; "Run now" asks the selected ones again.

    Read-only here: a case is made, and its expectations changed, from the review queue
    (one case per knowledge base and question); deleting one is an admin's change.
    """

    list_display = [
        "question_text", "knowledge_base", "expects", "verdict", "last_run_at",
        "last_detail", "created_by",
    ]  # fmt: skip
    list_filter = [
        "last_passed",
        "expect_abstention",
        ("knowledge_base", admin.RelatedOnlyFieldListFilter),
    ]
    search_fields = ["question", "expected_answer", "expected_source_title"]
    list_select_related = ["knowledge_base__account", "created_by"]
    actions = ["run_now"]
    fields = readonly_fields = (
        "question", "account", "knowledge_base", "expected_answer", "expected_source_title",
        "expected_source_path", "expect_abstention", "verdict", "last_run_at", "last_detail",
        "last_answer", "made_from", "created_by", "created_at",
    )  # fmt: skip

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return AccountScopedAdmin.has_change_permission(self, request, obj)

    def has_run_permission(self, request: HttpRequest) -> bool:
        return AccountScopedAdmin.has_change_permission(self, request)

    @admin.display(description="Question")
    def question_text(self, obj: GoldenCase) -> str:
        return _short(obj.question, 120)

    @admin.display(description="Expects")
    def expects(self, obj: GoldenCase) -> str:
        if obj.expect_abstention:
            return "“does not say”"
        parts = []
        if obj.expected_answer:
            parts.append(f"“{_short(obj.expected_answer, 60)}”")
        if obj.expected_source_path:
            parts.append(f"cites {obj.expected_source_title or obj.expected_source_path}")
        return " and ".join(parts)

    @admin.display(description="Status", ordering="last_passed")
    def verdict(self, obj: GoldenCase) -> str:
        return _verdict_html(obj.last_passed)

    @admin.display(description="Made from")
    def made_from(self, obj: GoldenCase) -> str:
        if obj.created_from_id is None:
            return "—"
        url = reverse("admin:chat_feedbackreview_changelist")
        return format_html('<a href="{}?message={}">the rated answer</a>', url, obj.created_from_id)

    @admin.action(description="Run now (through the answer pipeline)", permissions=["run"])
    def run_now(self, request: HttpRequest, queryset: QuerySet[GoldenCase]) -> None:
        if not request.user.is_superuser:
            # Staff of one account may be admins of another: run only what they manage.
            queryset = queryset.filter(account_id__in=self._manageable(request))
        run = golden_cases_run(cases=queryset)
        total = len(run.results)
        self.message_user(
            request,
            f"{run.passed} of {total} golden case{'s' if total != 1 else ''} pass now.",
            messages.SUCCESS if run.passed == total else messages.WARNING,
        )
