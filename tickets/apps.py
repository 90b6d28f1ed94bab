from django.apps import AppConfig


class TicketsConfig(AppConfig):
    """Escalation to a person: tickets, their classification, routing and the staff inbox.

    Sits above ``chat`` (it reads conversations and answers, drafts replies through the
    answer pipeline); ``chat`` never imports it and tells it about answers through
    ``chat.signals``.
    """

    name = "tickets"
    verbose_name = "Tickets"
