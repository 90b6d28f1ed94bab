"""Pages of the kb app: the document view that citations link to."""

from django.urls import path

from kb import views

app_name = "kb"

urlpatterns = [
    path("documents/<int:document_id>/", views.document_detail, name="document_detail"),
]
