"""REST API of knowledge bases and search, and the base every account-scoped API class uses.

Tenancy: ``AccountScopedApi`` is the one place API reads are scoped. Its ``scoped()``
filters a queryset by the accounts ``request_account_ids`` grants for the class's
``required_scope``, in SQL; objects outside them are 404 (403 only when the caller
can read the object but the operation needs more, e.g. a staff member deleting).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from django.db.models import Count, Model, Q, QuerySet
from django.http import HttpRequest, HttpResponseBase
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, NotFound, PermissionDenied, ValidationError
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from kb.api.auth import request_account_ids
from kb.api.serializers import KnowledgeBaseReferenceSerializer
from kb.embeddings.base import EmbeddingError
from kb.embeddings.privacy import EmbeddingModelRefused, embedding_model_check
from kb.models import Account, ApiKey, KnowledgeBase, default_embedding_model
from kb.selectors.search import MODES, SearchHit, chunk_search
from kb.services.knowledge_bases import KnowledgeBaseSlugTaken, knowledge_base_create
from web.api_errors import ServiceUnavailable
from web.api_schema import ERROR_HEADERS, error_responses

M = TypeVar("M", bound=Model)

MAX_OFFSET = 10**12  # beyond any real table; keeps OFFSET within PostgreSQL's bigint
EMBEDDING_RETRY_AFTER_SECONDS = 30


class ApiPagination(LimitOffsetPagination):
    """``?limit=&offset=`` pages: 50 by default, at most 200; an absurd offset is an
    empty page, not a database error."""

    max_limit = 200

    def get_offset(self, request: Request) -> int:
        return min(super().get_offset(request), MAX_OFFSET)


def reference_id(reference: object) -> int | None:
    """The id a knowledge base reference spells, or None when it is a slug.

    Only ASCII digits, at most 19 (a bigint): ``"²".isdigit()`` is true but ``int("²")``
    raises, ``int("٣")`` is 3, and ``int()`` refuses more than 4,300 digits.
    """
    text = str(reference)
    if text.isascii() and text.isdigit() and len(text) <= 19:
        return int(text)
    return None


class AccountScopedApi(APIView):
    """Base of every API class that serves account data."""

    required_scope: ClassVar[str] = ApiKey.Scope.READ  # checked by kb.api.auth.HasScope
    pagination_class = ApiPagination

    def account_ids(self, scope: str | None = None) -> set[int]:
        """The accounts this request may act on for ``scope`` (default: the class's)."""
        scope = scope or self.required_scope
        cache: dict[str, set[int]] = self.__dict__.setdefault("_account_ids", {})
        if scope not in cache:
            cache[scope] = request_account_ids(self.request, scope=scope)
        return cache[scope]

    def scoped(self, queryset: QuerySet[M]) -> QuerySet[M]:
        return queryset.filter(account_id__in=self.account_ids())

    def not_found(self, candidates: QuerySet[Any], what: str) -> APIException:
        """404 for objects the caller cannot see; 403 for ``candidates`` the caller can
        read when this operation needs more than reading."""
        readable = self.account_ids(ApiKey.Scope.READ)
        if self.required_scope != ApiKey.Scope.READ and (
            candidates.filter(account_id__in=readable).exists()
        ):
            return PermissionDenied(f"Changing this {what} needs the admin role in its account.")
        return NotFound(f"No such {what}.")

    def knowledge_base_get(self, reference: str) -> KnowledgeBase:
        """The caller's knowledge base ``reference``: its id, else its slug.

        A slug used by several of the caller's accounts (a session user in several) is
        ambiguous: 400, asking for the id.
        """
        lookup = Q(slug=reference)
        if (pk := reference_id(reference)) is not None:
            lookup |= Q(pk=pk)
        candidates = KnowledgeBase.objects.filter(lookup)
        matches = list(self.scoped(candidates).select_related("account")[:3])
        by_id = [kb for kb in matches if str(kb.pk) == reference]
        if by_id:
            return by_id[0]
        if len(matches) > 1:
            raise ValidationError(
                {
                    "knowledge_base": f"Several of your accounts have a knowledge base "
                    f"{reference!r}; give its id instead."
                }
            )
        if not matches:
            raise self.not_found(candidates, "knowledge base")
        return matches[0]

    def paginated_response(
        self, queryset: QuerySet[Any], serializer_class: type[serializers.Serializer]
    ) -> Response:
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(queryset, self.request, view=self) or []
        return paginator.get_paginated_response(serializer_class(page, many=True).data)


class OperationsApi(APIView):
    """One path, several operations: each HTTP method is served by its own ``…Api`` class.

    Django routes by path, while REST puts several operations on one path (GET lists,
    POST creates). A subclass names the operation classes as its bases after this one,
    ``class DocumentsApi(OperationsApi, DocumentListApi, DocumentUploadApi)``; each
    request goes to the base that defines its method, so each operation keeps its own
    scope, parsers and serializers, while the schema generator sees one class with
    every method and its annotations. Other methods get a 405 listing them all.
    """

    @classmethod
    def as_view(cls, **initkwargs: Any) -> Any:  # a view function, like APIView.as_view
        combined = super().as_view(**initkwargs)
        handlers: dict[str, Callable[..., HttpResponseBase]] = {}
        for base in cls.__bases__:
            if base is OperationsApi or not issubclass(base, APIView):
                continue
            methods = [m for m in base.http_method_names if m in vars(base) and m != "options"]
            if methods:
                operation_view = base.as_view(**initkwargs)
                handlers.update({method.upper(): operation_view for method in methods})
        if "GET" in handlers:
            handlers.setdefault("HEAD", handlers["GET"])

        def by_method(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            return handlers.get(request.method or "", combined)(request, *args, **kwargs)

        # What Django and drf-spectacular read from a class-based view function.
        for name in ("cls", "initkwargs", "view_class", "view_initkwargs"):
            setattr(by_method, name, getattr(combined, name))
        return csrf_exempt(by_method)


# --- Knowledge bases ---------------------------------------------------------------


class KnowledgeBaseSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    slug = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField()
    account = serializers.CharField(source="account.slug", help_text="The account's slug.")
    embedding_model = serializers.CharField()
    documents_count = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class KnowledgeBaseListApi(AccountScopedApi):
    required_scope = ApiKey.Scope.READ

    @extend_schema(
        operation_id="knowledge_bases_list",
        summary="List the knowledge bases you can read",
        tags=["knowledge bases"],
        responses={200: KnowledgeBaseSerializer(many=True), **error_responses()},
        parameters=[*ERROR_HEADERS],
    )
    def get(self, request: Request) -> Response:
        knowledge_bases = (
            self.scoped(KnowledgeBase.objects.all())
            .select_related("account")
            .annotate(documents_count=Count("documents"))
            .order_by("account__name", "name", "pk")
        )
        return self.paginated_response(knowledge_bases, KnowledgeBaseSerializer)


class KnowledgeBaseCreateApi(AccountScopedApi):
    required_scope = ApiKey.Scope.INGEST

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=200)
        slug = serializers.SlugField(
            max_length=80, required=False, help_text="Default: made from the name."
        )
        description = serializers.CharField(
            max_length=5000, required=False, allow_blank=True, default=""
        )
        account = serializers.SlugField(
            max_length=80,
            required=False,
            help_text="The account's slug. With an API key: the key's account (the default). "
            "With a session: required if you administer several accounts.",
        )

    @extend_schema(
        operation_id="knowledge_bases_create",
        summary="Create a knowledge base",
        tags=["knowledge bases"],
        request=InputSerializer,
        responses={201: KnowledgeBaseSerializer, **error_responses(400, 404)},
        parameters=[*ERROR_HEADERS],
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        account = self._account(data.pop("account", None))
        try:
            embedding_model_check(account=account, model_id=default_embedding_model())
        except EmbeddingModelRefused as exc:
            raise ValidationError({"embedding_model": str(exc)}) from exc
        try:
            knowledge_base = knowledge_base_create(account=account, **data)
        except (KnowledgeBaseSlugTaken, ValueError) as exc:
            raise ValidationError({"slug": str(exc)}) from exc
        knowledge_base.documents_count = 0  # type: ignore[attr-defined]
        return Response(KnowledgeBaseSerializer(knowledge_base).data, status.HTTP_201_CREATED)

    def _account(self, slug: str | None) -> Account:
        accounts = Account.objects.filter(pk__in=self.account_ids())
        if slug:
            account = accounts.filter(slug=slug).first()
            if account is None:
                raise NotFound(f"No account {slug!r} that you administer.")
            return account
        found = list(accounts.order_by("pk")[:2])
        if len(found) > 1:
            raise ValidationError(
                {"account": "You administer several accounts; give the account's slug."}
            )
        if not found:
            raise PermissionDenied("You administer no account.")
        return found[0]


class KnowledgeBasesApi(OperationsApi, KnowledgeBaseListApi, KnowledgeBaseCreateApi):
    """``knowledge-bases``: GET lists, POST creates."""


# --- Search ------------------------------------------------------------------------


class SearchChunkSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    ordinal = serializers.IntegerField(help_text="Position of the chunk in its document.")
    heading_path = serializers.CharField(help_text='Section path, e.g. "Billing > Refunds".')
    text = serializers.CharField()
    page = serializers.IntegerField(allow_null=True, help_text="PDF page, if known.")


class SearchDocumentSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    title = serializers.CharField()
    # DRF's metaclass moves declared fields off the class; ``Field.source`` is not shadowed.
    source = serializers.CharField()  # type: ignore[assignment]


class VectorScoreSerializer(serializers.Serializer):
    rank = serializers.IntegerField(help_text="1 = the nearest chunk.")
    similarity = serializers.FloatField(help_text="Cosine similarity to the query (-1..1).")


class KeywordScoreSerializer(serializers.Serializer):
    rank = serializers.IntegerField(help_text="1 = the best keyword match.")
    bm25 = serializers.FloatField(help_text="BM25 score (exact, per knowledge base).")


class SearchScoresSerializer(serializers.Serializer):
    fused = serializers.FloatField(help_text="Reciprocal rank fusion of the channels' ranks.")
    vector = VectorScoreSerializer(
        allow_null=True, help_text="null: the vector channel did not propose this chunk."
    )
    keyword = KeywordScoreSerializer(
        allow_null=True, help_text="null: the keyword channel did not propose this chunk."
    )


class SearchHitSerializer(serializers.Serializer):
    rank = serializers.IntegerField()
    chunk = SearchChunkSerializer()
    document = SearchDocumentSerializer()
    knowledge_base = KnowledgeBaseReferenceSerializer()
    scores = SearchScoresSerializer()


class ChunkSearchApi(AccountScopedApi):
    """Retrieval only (no answer): the chunks that best match a query, with channel scores."""

    required_scope = ApiKey.Scope.READ

    class InputSerializer(serializers.Serializer):
        q = serializers.CharField(max_length=2000, help_text="The query.")
        knowledge_base = serializers.CharField(
            max_length=100,
            required=False,
            help_text="Slug or id. Default: all your knowledge bases (of one account).",
        )
        k = serializers.IntegerField(
            min_value=1, max_value=50, default=10, help_text="How many hits (1-50)."
        )
        mode = serializers.ChoiceField(choices=MODES, default="hybrid")

    class OutputSerializer(serializers.Serializer):
        query = serializers.CharField()
        mode = serializers.ChoiceField(choices=MODES)
        knowledge_bases = KnowledgeBaseReferenceSerializer(many=True)
        nothing_relevant = serializers.BooleanField(
            help_text="No hit reaches the relevance floor (keyword mode: nothing matched)."
        )
        hits = SearchHitSerializer(many=True)

    @extend_schema(
        operation_id="search",
        summary="Search chunks (retrieval only)",
        tags=["search"],
        parameters=[InputSerializer, *ERROR_HEADERS],
        responses={200: OutputSerializer, **error_responses(400, 404, 503)},
    )
    def get(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.query_params)
        serializer.is_valid(raise_exception=True)
        query, reference = (
            serializer.validated_data["q"],
            serializer.validated_data.get("knowledge_base"),
        )
        mode, k = serializer.validated_data["mode"], serializer.validated_data["k"]
        if reference is None:
            knowledge_bases = list(self.scoped(KnowledgeBase.objects.select_related("account")))
        else:
            knowledge_bases = [self.knowledge_base_get(reference)]
        if len({kb.account_id for kb in knowledge_bases}) > 1:
            raise ValidationError(
                {"knowledge_base": "Your knowledge bases are in several accounts; say which one."}
            )
        hits: list[SearchHit] = []
        nothing_relevant = True
        if knowledge_bases:
            try:
                result = chunk_search(
                    account=knowledge_bases[0].account,
                    knowledge_bases=knowledge_bases,
                    query=query,
                    k=k,
                    mode=mode,
                )
            except EmbeddingError as exc:
                raise ServiceUnavailable(
                    f"The embedding provider is unavailable: {exc}",
                    retry_after=EMBEDDING_RETRY_AFTER_SECONDS if exc.transient else None,
                ) from exc
            hits, nothing_relevant = result.hits, result.nothing_relevant
        by_id = {kb.pk: kb for kb in knowledge_bases}
        body = {
            "query": query,
            "mode": mode,
            "knowledge_bases": knowledge_bases,
            "nothing_relevant": nothing_relevant,
            "hits": [_hit(rank, hit, by_id) for rank, hit in enumerate(hits, start=1)],
        }
        return Response(self.OutputSerializer(body).data)


def _hit(rank: int, hit: SearchHit, knowledge_bases: dict[int, KnowledgeBase]) -> dict[str, Any]:
    chunk = hit.chunk
    vector = keyword = None
    if hit.vector_rank is not None:
        vector = {"rank": hit.vector_rank, "similarity": hit.vector_similarity}
    if hit.keyword_rank is not None:
        keyword = {"rank": hit.keyword_rank, "bm25": hit.keyword_score}
    return {
        "rank": rank,
        "chunk": chunk,
        "document": chunk.document,
        "knowledge_base": knowledge_bases[chunk.knowledge_base_id],
        "scores": {"fused": hit.fused_score, "vector": vector, "keyword": keyword},
    }
