"""Sign-in and sign-out: the site's page and the admin's, both behind the sign-in throttle.

Included by config/urls.py before the admin's own URLs, so that the admin's sign-in page is
this one.
"""

from django.contrib.auth import views as auth_views
from django.urls import path

from chat.sign_in import ThrottledLoginView, admin_login

urlpatterns = [
    path("admin/login/", admin_login),
    path("accounts/login/", ThrottledLoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
]
