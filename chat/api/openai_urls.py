"""The OpenAI-compatible endpoint: /v1/chat/completions and /v1/models."""

from django.urls import path

from chat.api import openai

urlpatterns = [
    path("models", openai.ModelListApi.as_view(), name="openai-models"),
    path("chat/completions", openai.ChatCompletionCreateApi.as_view(), name="openai-chat"),
]
