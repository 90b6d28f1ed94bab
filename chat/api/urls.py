"""/api/v1/ routes of the chat app."""

from django.urls import path

from chat.api import views

urlpatterns = [
    path("answers", views.AnswerCreateApi.as_view(), name="api-answers"),
    path("conversations", views.ConversationListApi.as_view(), name="api-conversations"),
    path(
        "conversations/<int:conversation_id>/messages",
        views.ConversationMessagesApi.as_view(),
        name="api-conversation-messages",
    ),
    path(
        "messages/<int:message_id>/feedback",
        views.FeedbackCreateApi.as_view(),
        name="api-feedback",
    ),
]
