"""/api/v1/ routes of the ingest app: documents (see config/api_urls.py)."""

from django.urls import path

from ingest.api import views

urlpatterns = [
    path("documents", views.DocumentsApi.as_view(), name="api-documents"),
    path("documents/<int:document_id>", views.DocumentApi.as_view(), name="api-document"),
    path(
        "documents/<int:document_id>/retry",
        views.DocumentRetryApi.as_view(),
        name="api-document-retry",
    ),
]
