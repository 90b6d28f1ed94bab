"""The sign-in page, throttled: too many attempts get 429 with Retry-After."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse

from chat.ratelimits import login_attempt_check


class ThrottledLoginView(auth_views.LoginView):
    redirect_authenticated_user = True

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        exceeded = login_attempt_check(request=request, username=request.POST.get("username", ""))
        if exceeded is None:
            return super().post(request, *args, **kwargs)
        form = self.get_form()
        response = self.render_to_response(
            self.get_context_data(form=form, throttled=exceeded.message), status=429
        )
        response["Retry-After"] = str(exceeded.retry_after)
        return response
