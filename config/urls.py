"""Top-level URL map."""

from django.contrib import admin
from django.urls import path
from django.views.generic import RedirectView

from config import health

admin.site.site_header = "Cairn administration"
admin.site.site_title = "Cairn"
admin.site.index_title = "Knowledge bases and documents"

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("admin/", admin.site.urls),
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
]
