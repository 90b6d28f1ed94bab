"""Output pieces several API views share: references to knowledge bases, nullable text."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers


class KnowledgeBaseReferenceSerializer(serializers.Serializer):
    """How other objects (documents, search hits) point at their knowledge base."""

    id = serializers.IntegerField()
    slug = serializers.CharField()
    name = serializers.CharField()


class BlankAsNullCharField(serializers.CharField):
    """Text that is ``null`` rather than ``""`` when there is none (e.g. a document's error)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("allow_null", True)
        super().__init__(**kwargs)

    def to_representation(self, value: Any) -> str | None:  # type: ignore[override]
        return str(value) if value else None
