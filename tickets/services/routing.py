"""Routing: which queue a classified ticket goes to.

An account's rules are tried by ``position`` (then id); a rule's blank category or urgency
matches any; the first match wins. No match: the account's default queue; none either:
the ticket stays unrouted, and every member of the account sees it in the inbox.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Q

from tickets.models import Queue, RoutingRule
from tickets.selectors.settings import ticket_settings_get


@dataclass(frozen=True)
class Route:
    queue: Queue | None
    rule: RoutingRule | None  # the rule that matched; None: the default queue, or unrouted

    @property
    def reason(self) -> str:
        if self.rule is not None:
            return "rule"
        return "default" if self.queue is not None else "unrouted"


def route_find(*, account_id: int, category: str, urgency: str) -> Route:
    """Where a ticket of this category and urgency goes in ``account_id``.

    Rules and queues are read within the account only: a rule can never send a ticket to
    another account's queue, even one whose row names it.
    """
    rule = (
        RoutingRule.objects.filter(account_id=account_id, queue__account_id=account_id)
        .filter(Q(category="") | Q(category=category))
        .filter(Q(urgency="") | Q(urgency=urgency))
        .select_related("queue")
        .order_by("position", "id")
        .first()
    )
    if rule is not None:
        return Route(queue=rule.queue, rule=rule)
    default_id = ticket_settings_get(account_id=account_id).default_queue_id
    queue = (
        Queue.objects.filter(pk=default_id, account_id=account_id).first()
        if default_id is not None
        else None
    )
    return Route(queue=queue, rule=None)
