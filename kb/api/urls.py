"""/api/v1/ routes of the kb app: knowledge bases and search (see config/api_urls.py)."""

from django.urls import path

from kb.api import views

urlpatterns = [
    path("knowledge-bases", views.KnowledgeBasesApi.as_view(), name="api-knowledge-bases"),
    path("search", views.ChunkSearchApi.as_view(), name="api-search"),
]
