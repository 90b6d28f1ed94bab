"""/api/v1/: each app's endpoints, the OpenAPI schema and its interactive docs."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

urlpatterns = [
    path("v1/", include("kb.api.urls")),
    path("v1/", include("ingest.api.urls")),
    path("v1/", include("chat.api.urls")),
    path("v1/", include("tickets.api.urls")),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves its start-up script as a file: the CSP allows no inline script.
    # No OPTIONS: its metadata would go to the HTML renderer, which has no template for it.
    path(
        "docs/",
        SpectacularSwaggerSplitView.as_view(url_name="api-schema", metadata_class=None),
        name="api-docs",
    ),
]
