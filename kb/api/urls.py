"""API routes (see config/api_urls.py)."""

from django.urls import path  # noqa: F401

urlpatterns: list = []
