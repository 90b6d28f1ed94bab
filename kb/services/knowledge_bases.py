"""Creating knowledge bases on request (the API); ``knowledge_base_ensure`` serves set-up code."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils.text import slugify

from kb.models import Account, KnowledgeBase

SLUG_MAX_LENGTH = 80


class KnowledgeBaseSlugTaken(Exception):
    """The account already has a knowledge base with this slug."""

    def __init__(self, slug: str) -> None:
        super().__init__(
            f"This account already has a knowledge base with the slug {slug!r}; "
            "choose another slug."
        )
        self.slug = slug


def knowledge_base_slug(name: str) -> str:
    """A slug made from ``name`` (ASCII, at most 80 characters); empty if nothing is left."""
    return slugify(name)[:SLUG_MAX_LENGTH].strip("-")


def knowledge_base_create(
    *, account: Account, name: str, slug: str | None = None, description: str = ""
) -> KnowledgeBase:
    """A new, empty knowledge base of ``account`` using the default embedding model.

    ``slug`` defaults to one made from ``name``. Raises KnowledgeBaseSlugTaken when
    the account already uses the slug (decided by the unique constraint, so two
    concurrent requests cannot both win), and ValueError when no slug is given and
    none can be made from the name.
    """
    slug = slug or knowledge_base_slug(name)
    if not slug:
        raise ValueError("No slug can be made from this name; give a slug.")
    try:
        with transaction.atomic():
            return KnowledgeBase.objects.create(
                account=account, name=name, slug=slug, description=description
            )
    except IntegrityError as exc:
        raise KnowledgeBaseSlugTaken(slug) from exc
