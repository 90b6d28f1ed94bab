"""The staff inbox (mounted at /inbox/) and the asker's side of a ticket."""

from django.urls import path

from tickets import views
from tickets.sse import inbox_events

app_name = "tickets"

urlpatterns = [
    path("", views.inbox, name="inbox"),
    path("stream", inbox_events, name="stream"),
    path("t/<int:ticket_id>/", views.ticket_detail, name="ticket"),
    path("t/<int:ticket_id>/assign", views.ticket_assign, name="assign"),
    path("t/<int:ticket_id>/status", views.ticket_status, name="status"),
    path("t/<int:ticket_id>/note", views.ticket_note, name="note"),
    path("t/<int:ticket_id>/reply", views.ticket_reply, name="reply"),
    path("t/<int:ticket_id>/draft", views.ticket_draft, name="draft"),
    path("c/<int:conversation_id>/status", views.conversation_status, name="conversation_status"),
    path(
        "c/<int:conversation_id>/person", views.conversation_escalate, name="conversation_escalate"
    ),
]
