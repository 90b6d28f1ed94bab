"""The two sign-in pages, the site's (/accounts/login/) and the admin's (/admin/login/),
throttled by one limiter (chat.ratelimits.login_attempt_check) counting in the same
counters: too many attempts get 429 with Retry-After and the page again, saying so."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext as _

from chat.ratelimits import LimitExceeded, login_attempt_check


def sign_in_throttle(request: HttpRequest) -> LimitExceeded | None:
    """Count a posted sign-in form and say whether it is over a limit (None: go on)."""
    if request.method != "POST":
        return None
    return login_attempt_check(request=request, username=request.POST.get("username", ""))


class ThrottledLoginView(auth_views.LoginView):
    redirect_authenticated_user = True

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if exceeded := sign_in_throttle(request):
            return self.refused(exceeded)
        return super().post(request, *args, **kwargs)

    def refused(self, exceeded: LimitExceeded) -> HttpResponse:
        """The page again with the reason, 429 and Retry-After. The form is unbound, so the
        password is never checked (no answer, and no time, tells whether it was right);
        the user name is kept."""
        form = self.get_form_class()(
            self.request, initial={"username": self.request.POST.get("username", "")}
        )
        response = self.render_to_response(
            self.get_context_data(form=form, throttled=exceeded.message), status=429
        )
        response["Retry-After"] = str(exceeded.retry_after)
        return response


def admin_login(request: HttpRequest) -> HttpResponse:
    """The admin's sign-in page (``admin.site.login``) behind the same throttle.

    Routed before ``admin/`` so that it answers /admin/login/; ``reverse("admin:login")``
    still gives that path. An attempt within the limits is the admin's own view, unchanged.
    """
    exceeded = sign_in_throttle(request)
    if exceeded is None:
        return admin.site.login(request)
    context = {
        **admin.site.each_context(request),
        "title": _("Log in"),
        "subtitle": None,
        "app_path": request.get_full_path(),
        "username": request.user.get_username(),
    }
    view = ThrottledLoginView(
        template_name=admin.site.login_template or "admin/login.html",
        authentication_form=admin.site.login_form or AdminAuthenticationForm,
        extra_context=context,
    )
    view.setup(request)
    request.current_app = admin.site.name
    return view.refused(exceeded)
