"""Two tiny API views for the authentication tests (``@pytest.mark.urls``), so they
exercise the real settings (authentication, permissions, error handler) without
depending on any production endpoint."""

from __future__ import annotations

from django.urls import path
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from kb.api.auth import request_account_ids


class AccountsReadApi(APIView):
    required_scope = "read"

    def get(self, request: Request) -> Response:
        return Response({"account_ids": sorted(request_account_ids(request, scope="read"))})


class AccountsIngestApi(APIView):
    required_scope = "ingest"

    def post(self, request: Request) -> Response:
        return Response({"account_ids": sorted(request_account_ids(request, scope="ingest"))})


urlpatterns = [
    path("probe/read", AccountsReadApi.as_view()),
    path("probe/ingest", AccountsIngestApi.as_view()),
]
