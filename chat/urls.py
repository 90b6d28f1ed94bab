"""The chat UI: conversations, questions, the answer stream, feedback."""

from django.urls import path
from django.views.generic import RedirectView

from chat import views
from chat.sse import answer_events

app_name = "chat"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="chat:home", permanent=False), name="root"),
    path("chat/", views.home, name="home"),
    path("chat/ask", views.conversation_start, name="conversation_start"),
    path("chat/c/<int:conversation_id>/", views.conversation_detail, name="conversation"),
    path("chat/c/<int:conversation_id>/ask", views.question_ask, name="ask"),
    path("chat/m/<int:message_id>/", views.message_detail, name="message"),
    path("chat/m/<int:message_id>/stream", answer_events, name="stream"),
    path("chat/m/<int:message_id>/stop", views.answer_stop, name="stop"),
    path("chat/m/<int:message_id>/regenerate", views.answer_regenerate, name="regenerate"),
    path("chat/m/<int:message_id>/feedback", views.feedback_give, name="feedback"),
]
