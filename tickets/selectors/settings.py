"""An account's escalation settings, as they are or as their defaults."""

from __future__ import annotations

from tickets.models import TicketSettings


def ticket_settings_get(*, account_id: int) -> TicketSettings:
    """The account's TicketSettings; an unsaved row with the defaults if it has none
    (reading never writes: this runs inside every answer's transaction)."""
    found = TicketSettings.objects.filter(account_id=account_id).first()
    return found if found is not None else TicketSettings(account_id=account_id)
