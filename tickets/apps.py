from django.apps import AppConfig


class TicketsConfig(AppConfig):
    """Escalation to a person: tickets, their classification, routing and the staff inbox.

    Sits above ``chat`` (it reads conversations and answers, drafts replies through the
    answer pipeline); ``chat`` never imports it and tells it about answers through
    ``chat.signals``, whose receivers are connected here.
    """

    name = "tickets"
    verbose_name = "Tickets"

    def ready(self) -> None:
        from chat.signals import answer_finished, feedback_given
        from tickets.dashboard import register as dashboard_section_register
        from tickets.receivers import on_answer_finished, on_feedback_given

        answer_finished.connect(on_answer_finished, dispatch_uid="tickets.answer_finished")
        feedback_given.connect(on_feedback_given, dispatch_uid="tickets.feedback_given")
        # The admin dashboard's ticket timings (chat renders sections it does not import).
        dashboard_section_register()
