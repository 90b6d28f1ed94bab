"""What the answer API sends: an answer with its citations, usage and provenance."""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from rest_framework import serializers

from chat.models import Citation, Conversation, Message
from chat.presentation import citation_url, purged_text


class CitationOutputSerializer(serializers.Serializer):
    n = serializers.IntegerField(help_text="The [n] marker in the answer.")
    document_id = serializers.IntegerField(allow_null=True)
    document_title = serializers.CharField()
    chunk_id = serializers.IntegerField(allow_null=True, help_text="Null once re-ingested.")
    heading_path = serializers.CharField(allow_blank=True)
    snippet = serializers.CharField(
        allow_blank=True, help_text="The cited passage; empty once removed by retention."
    )
    url = serializers.CharField(allow_blank=True, help_text="The passage in the document view.")
    score = serializers.FloatField(allow_null=True, help_text="Support score of the check.")


class SentenceOutputSerializer(serializers.Serializer):
    text = serializers.CharField(allow_blank=True, help_text="The sentence, without [n] markers.")
    citations = serializers.ListField(
        child=serializers.IntegerField(), help_text="The [n] of the citations that stood."
    )
    supported = serializers.BooleanField(
        help_text="False: the sentence states something no cited passage backs, or cites "
        "nothing (marked [?] in the answer). Headings, lead-ins and the abstention are true."
    )


class UsageOutputSerializer(serializers.Serializer):
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    cost = serializers.DecimalField(max_digits=14, decimal_places=8, coerce_to_string=False)


class AnswerOutputSerializer(serializers.Serializer):
    message_id = serializers.IntegerField()
    conversation_id = serializers.IntegerField()
    question = serializers.CharField(allow_blank=True)
    answer = serializers.CharField(allow_blank=True)
    status = serializers.ChoiceField(choices=Message.Status.choices)
    problem = serializers.CharField(allow_blank=True)
    grounded = serializers.BooleanField(help_text="At least one citation passed the check.")
    citations = CitationOutputSerializer(many=True)
    closest_sources = CitationOutputSerializer(many=True)
    sentences = SentenceOutputSerializer(
        many=True,
        help_text="Every sentence of the answer as checked; empty when it was not checked "
        "(an abstention, a failure, a stop) or the retention policy removed it.",
    )
    usage = UsageOutputSerializer()
    cached = serializers.CharField(allow_blank=True, help_text='"exact", "semantic" or "".')
    provider = serializers.CharField(allow_blank=True)
    model = serializers.CharField(allow_blank=True)
    prompt_version = serializers.CharField(allow_blank=True)
    latency_ms = serializers.IntegerField(allow_null=True)
    time_to_first_token_ms = serializers.IntegerField(allow_null=True)
    created_at = serializers.DateTimeField()
    purged_at = serializers.DateTimeField(
        allow_null=True, help_text="When the retention policy removed the texts (else null)."
    )
    notice = serializers.CharField(
        allow_blank=True, help_text='Why the texts are empty, for people ("" if they are not).'
    )


def citation_data(citation: Citation, *, absolute: Any = None) -> dict[str, Any]:
    url = citation_url(citation)
    return {
        "n": citation.number,
        "document_id": citation.document_id,
        "document_title": citation.document_title,
        "chunk_id": citation.chunk_id,
        "heading_path": citation.heading_path,
        "snippet": citation.excerpt,
        "url": absolute(url) if absolute and url else url,
        "score": citation.support_score,
    }


def sentences_data(message: Message) -> list[dict[str, Any]]:
    """The checked sentences as the API shows them (their spans are the chat's business)."""
    return [
        {"text": s["text"], "citations": s["citations"], "supported": s["supported"]}
        for s in message.sentences
    ]


def answer_data(message: Message, *, absolute: Any = None) -> dict[str, Any]:
    """The answer as the API shows it (``absolute`` turns paths into full URLs)."""
    citations = list(message.citations.all())
    cited = [citation_data(c, absolute=absolute) for c in citations if c.kind == "cited"]
    closest = [citation_data(c, absolute=absolute) for c in citations if c.kind == "closest"]
    return {
        "message_id": message.pk,
        "conversation_id": message.conversation_id,
        "question": message.question.content if message.question else "",
        "answer": message.content,
        "status": message.status,
        "problem": message.problem,
        "grounded": message.status == Message.Status.DONE and bool(cited),
        "citations": cited,
        "closest_sources": closest,
        "sentences": sentences_data(message),
        "usage": {
            "input_tokens": message.input_tokens,
            "output_tokens": message.output_tokens,
            "cost": message.cost,
        },
        "cached": message.cached,
        "provider": message.provider,
        "model": message.model,
        "prompt_version": message.prompt_version,
        "latency_ms": message.latency_ms,
        "time_to_first_token_ms": message.time_to_first_token_ms,
        "created_at": message.created_at,
        "purged_at": message.purged_at,
        "notice": purged_text(message),
    }


class ConversationOutputSerializer(serializers.ModelSerializer):
    knowledge_base: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )
    url = serializers.SerializerMethodField()

    class Meta:
        model = Conversation
        fields = ["id", "title", "knowledge_base", "created_at", "updated_at", "url"]

    def get_url(self, conversation: Conversation) -> str:
        return reverse("api-conversation-messages", args=[conversation.pk])


class MessageOutputSerializer(serializers.ModelSerializer):
    citations = serializers.SerializerMethodField()
    notice = serializers.SerializerMethodField(
        help_text='Why ``content`` is empty, for people: "Answer removed after 30 days under '
        'the retention policy." ("" when it is not).'
    )

    class Meta:
        model = Message
        fields = [
            "id", "role", "content", "status", "problem", "created_at", "purged_at", "notice",
            "citations",
        ]  # fmt: skip

    def get_citations(self, message: Message) -> list[dict[str, Any]]:
        return [citation_data(c) for c in message.citations.all() if c.kind == "cited"]

    def get_notice(self, message: Message) -> str:
        return purged_text(message)
