"""Top-level URL map: each app's URLs, included by name (config imports no app)."""

from django.contrib import admin
from django.urls import include, path

admin.site.site_header = "Cairn administration"
admin.site.site_title = "Cairn"
admin.site.index_title = "Knowledge bases and documents"

urlpatterns = [
    path("", include("ops.urls")),
    path("", include("observability.urls")),
    path("", include("web.urls")),
    # Before the admin's own URLs: the dashboard inside the admin, and the admin's
    # sign-in page behind the sign-in throttle.
    path("", include("chat.dashboard.urls")),
    path("", include("chat.sign_in_urls")),
    path("admin/", admin.site.urls),
    path("api/", include("config.api_urls")),
    path("v1/", include("chat.api.openai_urls")),
    path("inbox/", include("tickets.urls")),
    path("", include("kb.urls")),
    path("", include("chat.urls")),
]

handler404 = "web.not_found.not_found"
handler400 = "web.api_errors.bad_request"
handler500 = "web.api_errors.server_error"
