"""/api/v1/ routes of the tickets app (see config/api_urls.py)."""

from django.urls import path

from tickets.api import views

urlpatterns = [
    path("tickets", views.TicketsApi.as_view(), name="api-tickets"),
    path("tickets/<int:ticket_id>", views.TicketDetailApi.as_view(), name="api-ticket"),
    path("tickets/<int:ticket_id>/reply", views.TicketReplyApi.as_view(), name="api-ticket-reply"),
    path(
        "tickets/<int:ticket_id>/status", views.TicketStatusApi.as_view(), name="api-ticket-status"
    ),
]
