"""Top-level URL map."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from chat.dashboard import views as dashboard_views
from config import favicon, health, metrics
from config.login import ThrottledLoginView, admin_login

admin.site.site_header = "Cairn administration"
admin.site.site_title = "Cairn"
admin.site.index_title = "Knowledge bases and documents"

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics_view, name="metrics"),
    path("favicon.ico", favicon.favicon, name="favicon"),
    # Before the admin's own URLs, which would answer 404 for it; admin_view brings the
    # admin's login redirect, staff check and no-cache headers.
    path(
        "admin/dashboard/",
        admin.site.admin_view(dashboard_views.dashboard),
        name="admin_dashboard",
    ),
    # Before the admin's URLs too: the admin's sign-in page behind the sign-in throttle.
    path("admin/login/", admin_login),
    path("admin/", admin.site.urls),
    path("accounts/login/", ThrottledLoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/", include("config.api_urls")),
    path("v1/", include("chat.api.openai_urls")),
    path("inbox/", include("tickets.urls")),
    path("", include("kb.urls")),
    path("", include("chat.urls")),
]

handler404 = "config.not_found.not_found"
handler400 = "config.api_errors.bad_request"
handler500 = "config.api_errors.server_error"
