"""Template helpers for the admin's link to the dashboard."""

from __future__ import annotations

from typing import Any

from django import template

from chat.selectors.dashboard import dashboard_allowed

register = template.Library()


@register.simple_tag(takes_context=True)
def dashboard_link_shown(context: dict[str, Any]) -> bool:
    """Only users the dashboard would let in see the link (others would get a 403)."""
    request = context.get("request")
    return request is not None and dashboard_allowed(user=request.user)
