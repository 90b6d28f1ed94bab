"""Top-level URL map."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from config import health
from config.login import ThrottledLoginView

admin.site.site_header = "Cairn administration"
admin.site.site_title = "Cairn"
admin.site.index_title = "Knowledge bases and documents"

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("admin/", admin.site.urls),
    path("accounts/login/", ThrottledLoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/", include("config.api_urls")),
    path("v1/", include("chat.api.openai_urls")),
    path("", include("kb.urls")),
    path("", include("chat.urls")),
]

handler404 = "config.not_found.not_found"
