"""Conversations, messages, citations, feedback and golden cases."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models.functions import MD5

from kb.models import Account, KnowledgeBase


class Conversation(models.Model):
    """One user's chat with one knowledge base."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations",
        null=True, blank=True, help_text="Empty for conversations held through an API key.",
    )  # fmt: skip
    api_key = models.ForeignKey(
        "kb.ApiKey", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    knowledge_base = models.ForeignKey(
        KnowledgeBase, on_delete=models.CASCADE, related_name="conversations"
    )
    title = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at", "-id"]
        indexes = [models.Index(fields=["user", "-updated_at"], name="chat_conversation_user")]

    def __str__(self) -> str:
        return self.title or f"Conversation {self.pk}"


class Message(models.Model):
    """A question or an answer. An answer starts ``pending`` (its placeholder is on
    screen), becomes ``streaming`` once one process claims it, and ends in one of
    the final states with its citations, usage and cost."""

    class Role(models.TextChoices):
        USER = "user", "User"
        ASSISTANT = "assistant", "Assistant"
        # A person's reply (a support agent answering an escalated question, tickets app).
        AGENT = "agent", "Support agent"

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting to start"
        STREAMING = "streaming", "Being written"
        DONE = "done", "Answered"
        ABSTAINED = "abstained", "Not in the knowledge base"
        STOPPED = "stopped", "Stopped"
        FAILED = "failed", "Failed"

    FINAL_STATUSES = (Status.DONE, Status.ABSTAINED, Status.STOPPED, Status.FAILED)
    UNFINISHED_STATUSES = (Status.PENDING, Status.STREAMING)

    class Problem(models.TextChoices):
        """Why an answer is not a normal one; the UI words each one for people."""

        NONE = "", "None"
        NOTHING_RELEVANT = "nothing_relevant", "Nothing relevant found"
        PROVIDERS_DOWN = "providers_down", "Language models unavailable"
        INTERRUPTED = "interrupted", "Interrupted"
        BUDGET_EXHAUSTED = "budget_exhausted", "Budget exhausted"
        RATE_LIMITED = "rate_limited", "Rate limited"
        INVALID_QUESTION = "invalid_question", "Question refused"
        INTERNAL = "internal", "Unexpected error"
        ABANDONED = "abandoned", "Abandoned: the process writing it stopped"

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages"
    )
    role = models.CharField(max_length=10, choices=Role.choices)
    question = models.ForeignKey(
        "self", on_delete=models.CASCADE, null=True, blank=True, related_name="answers",
        help_text="For an answer: the question it answers.",
    )  # fmt: skip
    content = models.TextField(
        blank=True, help_text="Question text, or the answer after the citation check."
    )
    raw_content = models.TextField(blank=True, help_text="The answer as the model streamed it.")
    sentences = models.JSONField(
        default=list,
        blank=True,
        help_text="The checked answer's sentences: [{text, citations, supported}].",
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DONE)
    problem = models.CharField(max_length=20, choices=Problem.choices, blank=True)
    superseded = models.BooleanField(default=False, help_text="Replaced by a regenerated answer.")
    prompt_version = models.CharField(max_length=40, blank=True)
    flags = models.JSONField(
        default=dict, blank=True,
        help_text="Feature-flag variants this answer was made under: {flag key: variant}.",
    )  # fmt: skip
    route = models.CharField(max_length=50, blank=True)
    provider = models.CharField(max_length=50, blank=True)
    model = models.CharField(max_length=200, blank=True)
    cached = models.CharField(max_length=10, blank=True, help_text='"exact" or "semantic".')
    request_id = models.CharField(max_length=64, blank=True, db_index=True)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    cost = models.DecimalField(max_digits=14, decimal_places=8, default=Decimal(0))
    time_to_first_token_ms = models.PositiveIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    retry_at = models.DateTimeField(
        null=True, blank=True, help_text="Refused for budget: when asking again may succeed."
    )
    injection_score = models.FloatField(
        null=True, blank=True, help_text="A question: the prompt-injection detector's score."
    )
    flagged = models.BooleanField(
        default=False, help_text="A question the injection detector flagged, for review."
    )
    idempotency_key = models.CharField(
        max_length=128,
        blank=True,
        db_index=True,
        help_text="The API client's key for this question, if any.",
    )
    purged_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the retention policy removed its text (usage figures are kept).",
    )
    progress_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="An answer being written: when its process last showed it was alive "
        "(the answer reaper's clock; see chat.services.recovery).",
    )

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(fields=["conversation", "created_at"], name="chat_message_conv"),
            # The retention purge looks for old rows not yet purged: a small index, since
            # purged rows (the bulk, over time) are left out of it.
            models.Index(
                fields=["created_at"],
                condition=models.Q(purged_at__isnull=True),
                name="chat_message_unpurged",
            ),
            # The answer reaper looks for unfinished answers every few seconds: a tiny
            # index, since an answer is unfinished for seconds of its whole life.
            models.Index(
                fields=["created_at"],
                condition=models.Q(role="assistant", status__in=["pending", "streaming"]),
                name="chat_message_unfinished",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.role}: {self.content[:60]}"

    @property
    def is_final(self) -> bool:
        return self.status in self.FINAL_STATUSES

    @property
    def answered_without_llm(self) -> bool:
        return self.provider == "local"


class FlaggedQuestion(Message):
    """A question the prompt-injection detector flagged: the admins' review list."""

    class Meta:
        proxy = True
        verbose_name = "flagged question"


class Citation(models.Model):
    """A passage an answer cites (``cited``) or, when it abstains, the closest ones
    (``closest``). The passage's place is copied so the link still makes sense after
    the document is re-ingested and its chunks replaced."""

    class Kind(models.TextChoices):
        CITED = "cited", "Cited"
        CLOSEST = "closest", "Closest source"

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="citations")
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.CITED)
    number = models.PositiveSmallIntegerField(help_text="The [n] of the answer.")
    chunk = models.ForeignKey(
        "kb.Chunk", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    document = models.ForeignKey(
        "kb.Document", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    document_title = models.CharField(max_length=300)
    heading_path = models.CharField(max_length=500, blank=True)
    excerpt = models.TextField()
    support_score = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["kind", "number"]
        constraints = [
            models.UniqueConstraint(
                fields=["message", "kind", "number"], name="chat_citation_unique_number"
            )
        ]

    def __str__(self) -> str:
        return f"[{self.number}] {self.document_title}"


class Feedback(models.Model):
    """A thumbs up or down on an answer, with an optional comment; one per user and answer."""

    class Rating(models.TextChoices):
        UP = "up", "Helpful"
        DOWN = "down", "Not helpful"

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="feedback")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", null=True, blank=True
    )
    api_key = models.ForeignKey(
        "kb.ApiKey", on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
        help_text="Given through the API with this key (no user).",
    )  # fmt: skip
    rating = models.CharField(max_length=4, choices=Rating.choices)
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["message", "user"], name="chat_feedback_unique_user"),
            models.UniqueConstraint(
                fields=["message", "api_key"],
                condition=models.Q(user__isnull=True),
                name="chat_feedback_unique_api_key",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.rating} on {self.message_id}"


class FeedbackReview(Feedback):
    """Thumbs-down answers, newest first: the admins' review queue, where one becomes a
    golden case."""

    class Meta:
        proxy = True
        verbose_name = "answer to review"
        verbose_name_plural = "answers to review"


class GoldenCase(models.Model):
    """A question the knowledge base must keep answering right, made by a reviewer from a
    thumbs-down answer (chat.services.golden_cases). ``manage.py evaluate --from-db`` and
    the admin's "Run now" ask it again through the answer pipeline and record the verdict.

    Right means: the answer contains ``expected_answer`` (when given) and cites a passage
    of the expected source (when given); with ``expect_abstention``, that it says the
    knowledge base does not tell.
    """

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="+")
    knowledge_base = models.ForeignKey(
        KnowledgeBase, on_delete=models.CASCADE, related_name="golden_cases"
    )
    question = models.TextField(help_text="Asked on its own, without the conversation.")
    expected_answer = models.CharField(
        max_length=500, blank=True,
        help_text="Text the answer must contain (case and spacing ignored).",
    )  # fmt: skip
    expected_source = models.ForeignKey(
        "kb.Document", on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
        help_text="A document the answer must cite.",
    )  # fmt: skip
    # Copied: the case still reads right once the document is deleted, and still matches
    # when the file is uploaded again (a new row with the same source).
    expected_source_title = models.CharField(max_length=300, blank=True)
    expected_source_path = models.CharField(
        max_length=500, blank=True, help_text="The expected document's source (file name or path)."
    )
    expect_abstention = models.BooleanField(
        default=False, help_text="The right answer is that the knowledge base does not say."
    )
    created_from = models.ForeignKey(
        Message, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
        help_text="The answer that was rated down.",
    )  # fmt: skip
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
        related_name="+",
    )  # fmt: skip
    created_at = models.DateTimeField(auto_now_add=True)
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_passed = models.BooleanField(
        null=True, blank=True, verbose_name="passed last run", help_text="Empty: never run."
    )
    last_answer = models.TextField(blank=True, help_text="The answer of the last run.")
    last_detail = models.CharField(max_length=500, blank=True, help_text="Why the last run failed.")

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # Questions may run to thousands of characters, past what a btree entry holds:
            # the index keeps their digest.
            models.UniqueConstraint(
                "knowledge_base", MD5("question"), name="chat_goldencase_unique_question"
            ),
            # Something to check: expected text and/or source, or else the abstention.
            models.CheckConstraint(
                condition=(
                    models.Q(expect_abstention=True, expected_answer="", expected_source_path="")
                    | (
                        models.Q(expect_abstention=False)
                        & (~models.Q(expected_answer="") | ~models.Q(expected_source_path=""))
                    )
                ),
                name="chat_goldencase_expects_something",
            ),
        ]

    def __str__(self) -> str:
        return self.question[:80]

    @property
    def verdict(self) -> str:
        if self.last_passed is None:
            return "not run"
        return "passes now" if self.last_passed else "fails now"


class Budget(models.Model):
    """A cap on what an account (or one user of it) may spend on answers per day or month.

    Either cap may be empty (no cap on that measure). Past ``soft_threshold`` of a cap,
    answers take the cheaper route; at the cap they are refused until the window resets.
    """

    class Period(models.TextChoices):
        DAY = "day", "Day"
        MONTH = "month", "Month"

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="budgets")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True,
        related_name="+", help_text="Empty: the whole account.",
    )  # fmt: skip
    period = models.CharField(max_length=5, choices=Period.choices)
    token_cap = models.PositiveBigIntegerField(null=True, blank=True)
    cost_cap = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True)
    soft_threshold = models.FloatField(
        default=0.8, help_text="Share of a cap from which answers use the cheaper route."
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["account", "period"], condition=models.Q(user__isnull=True),
                name="chat_budget_one_per_account_period",
            ),
            models.UniqueConstraint(
                fields=["account", "user", "period"], name="chat_budget_one_per_user_period"
            ),
        ]  # fmt: skip

    def __str__(self) -> str:
        who = f"user {self.user_id}" if self.user_id else "account"
        return f"{self.account} {who} per {self.period}"

    @property
    def adjective(self) -> str:
        return "daily" if self.period == self.Period.DAY else "monthly"


class BudgetWindow(models.Model):
    """What was reserved and spent against a budget in one day or month."""

    budget = models.ForeignKey(Budget, on_delete=models.CASCADE, related_name="windows")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    tokens_reserved = models.BigIntegerField(default=0)
    tokens_spent = models.BigIntegerField(default=0)
    cost_reserved = models.DecimalField(max_digits=14, decimal_places=8, default=Decimal(0))
    cost_spent = models.DecimalField(max_digits=14, decimal_places=8, default=Decimal(0))
    # Each alert goes out once per window; set by a conditional update when sent.
    soft_alerted_at = models.DateTimeField(null=True, blank=True)
    hard_alerted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["budget", "starts_at"], name="chat_budget_window")
        ]

    def __str__(self) -> str:
        return f"{self.budget} from {self.starts_at:%Y-%m-%d}"


class BudgetReservation(models.Model):
    """An answer's hold on its budgets: reserved before any model call, settled once."""

    request_id = models.CharField(max_length=64, unique=True)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="+")
    windows = models.ManyToManyField(BudgetWindow, related_name="+")
    tokens = models.BigIntegerField()
    cost = models.DecimalField(max_digits=14, decimal_places=8)
    settled_tokens = models.BigIntegerField(null=True, blank=True)
    settled_cost = models.DecimalField(max_digits=14, decimal_places=8, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    settled_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.request_id
