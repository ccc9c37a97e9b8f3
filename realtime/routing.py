"""WebSocket routes: one endpoint, /ws/, for the whole event stream."""

from django.urls import path

from realtime.consumer import ClinicConsumer

websocket_urlpatterns = [path("ws/", ClinicConsumer.as_asgi())]
