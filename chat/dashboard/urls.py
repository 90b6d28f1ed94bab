"""The admin dashboard, inside the admin (its login redirect, staff check, no-cache headers).

Included by config/urls.py before the admin's own URLs, which would answer 404 for it.
"""

from django.contrib import admin
from django.urls import path

from chat.dashboard import views

urlpatterns = [
    path("admin/dashboard/", admin.site.admin_view(views.dashboard), name="admin_dashboard"),
]
