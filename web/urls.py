"""What a browser asks every site for."""

from django.urls import path

from web.favicon import favicon

urlpatterns = [path("favicon.ico", favicon, name="favicon")]
