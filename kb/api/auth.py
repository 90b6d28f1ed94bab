"""API authentication and authorisation: API keys (or the browser's session), scopes,
and the one function that says which accounts a request may touch."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.db.models import Q
from django.utils import timezone
from rest_framework import authentication, exceptions, permissions
from rest_framework.request import Request

from kb.models import ApiKey, Membership
from kb.selectors.accounts import account_ids_for_user
from kb.services.api_keys import key_digest

if TYPE_CHECKING:  # DRF imports this module while rest_framework.views is being loaded
    from rest_framework.views import APIView

LAST_USED_PRECISION = timedelta(minutes=1)  # at most one write per key per minute


@dataclass(frozen=True)
class ApiKeyUser:
    """``request.user`` for a call made with an API key: the key acts for its account."""

    api_key: ApiKey
    is_authenticated: bool = True
    is_anonymous: bool = False
    is_staff: bool = False
    is_superuser: bool = False
    pk: None = None
    id: None = None

    def get_username(self) -> str:
        return f"api-key:{self.api_key.prefix}"


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer cairn_…`` (what OpenAI clients send) or ``X-API-Key``."""

    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[ApiKeyUser, ApiKey] | None:
        key = self._presented_key(request)
        if key is None:
            return None
        now = timezone.now()
        api_key = (
            ApiKey.objects.select_related("account")
            .filter(digest=key_digest(key), revoked_at__isnull=True)
            .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
            .first()
        )
        if api_key is None:
            raise exceptions.AuthenticationFailed("This API key is not valid, expired or revoked.")
        if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_PRECISION:
            ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        return ApiKeyUser(api_key), api_key

    def _presented_key(self, request: Request) -> str | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if header:
            scheme, _, value = header.partition(" ")
            if scheme.lower() == "bearer" and value.strip():
                return value.strip()
        return request.META.get("HTTP_X_API_KEY") or None

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'  # makes DRF answer 401 (not 403) without credentials


def request_api_key(request: Request) -> ApiKey | None:
    return request.auth if isinstance(request.auth, ApiKey) else None


def request_account_ids(request: Request, *, scope: str | None = None) -> set[int]:
    """The accounts this request may act on: the key's account, or the session user's
    memberships (ingest needs the admin role); superusers are not special here."""
    api_key = request_api_key(request)
    if api_key is not None:
        return {api_key.account_id} if scope is None or scope in api_key.scope_set else set()
    roles = (Membership.Role.ADMIN,) if scope == ApiKey.Scope.INGEST else None
    return account_ids_for_user(user=request.user, roles=roles)


class HasScope(permissions.BasePermission):
    """The view's ``required_scope`` must be granted: by the key's scopes, or for a
    session by a membership (with the admin role for ``ingest``)."""

    message = "This API key does not have the scope this endpoint needs."

    def has_permission(self, request: Request, view: APIView) -> bool:
        scope: Any = getattr(view, "required_scope", None)
        if scope is None:
            return True
        return bool(request_account_ids(request, scope=scope))
