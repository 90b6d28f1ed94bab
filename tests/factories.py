"""Small factories for model rows used across tests."""

from __future__ import annotations

import hashlib
import itertools

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser
from django.core.files.base import ContentFile

from ingest.services.uploads import UploadOutcome, document_create
from kb.models import Account, Document, KnowledgeBase, Membership

_sequence = itertools.count(1)


def make_account(name: str | None = None) -> Account:
    n = next(_sequence)
    name = name or f"Account {n}"
    return Account.objects.create(name=name, slug=f"account-{n}")


def make_knowledge_base(account: Account, name: str = "Support") -> KnowledgeBase:
    n = next(_sequence)
    return KnowledgeBase.objects.create(account=account, name=name, slug=f"kb-{n}")


def make_user(
    *, staff: bool = True, account: Account | None = None, role: str = "admin"
) -> AbstractUser:
    n = next(_sequence)
    user = get_user_model().objects.create_user(
        username=f"user{n}", password="correct horse battery", is_staff=staff
    )
    if account is not None:
        Membership.objects.create(user=user, account=account, role=role)
    return user


def make_document(knowledge_base: KnowledgeBase, title: str = "Refund policy") -> Document:
    content = f"{title}\n\nBody {next(_sequence)}".encode()
    document = Document(
        account=knowledge_base.account,
        knowledge_base=knowledge_base,
        title=title,
        original_filename=f"{title}.txt",
        content_hash=hashlib.sha256(content).hexdigest(),
        mime_type="text/plain",
        size_bytes=len(content),
    )
    document.file.save("doc.txt", ContentFile(content), save=False)
    document.save()
    return document


def upload(
    knowledge_base: KnowledgeBase, name: str, content: bytes, source: str | None = None
) -> UploadOutcome:
    """Upload bytes as a document, the way the admin and the CLI do."""
    return document_create(
        knowledge_base=knowledge_base, upload=ContentFile(content, name=name), source=source
    )
