"""Sections that apps above chat add to the admin dashboard, without chat importing them.

``chat`` sits below ``tickets`` (and whatever comes next), so the dashboard cannot ask
them for figures; an app registers a section maker at start-up (its ``AppConfig.ready``)
and the dashboard renders what each returns, after its own panels, in registration order.
A maker reads only the rows of ``scope`` (the accounts and days the page shows) and
returns its section's HTML, or None to show nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from django.http import HttpRequest
from django.utils.safestring import SafeString

from chat.selectors.dashboard import DashboardScope

logger = logging.getLogger(__name__)

SectionMaker = Callable[[DashboardScope, HttpRequest], SafeString | None]


@dataclass(frozen=True)
class _Registered:
    name: str
    make: SectionMaker


_sections: dict[str, _Registered] = {}


def section_register(name: str, make: SectionMaker) -> None:
    """Add (or, under the same name, replace) a dashboard section."""
    _sections[name] = _Registered(name, make)


def section_unregister(name: str) -> None:
    _sections.pop(name, None)


def dashboard_sections(*, scope: DashboardScope, request: HttpRequest) -> list[SafeString]:
    """Each registered section's HTML for this page. A section that fails is left out
    (and logged): one app's bug must not take the whole dashboard down."""
    shown = []
    for section in list(_sections.values()):
        try:
            html = section.make(scope, request)
        except Exception:
            logger.exception("dashboard section %s failed", section.name)
            continue
        if html:
            shown.append(html)
    return shown
