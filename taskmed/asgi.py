"""The ASGI application: Django over HTTP and the event stream over WebSocket, served by uvicorn."""

import gc
import os
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "taskmed.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

django_http = get_asgi_application()  # set up Django before importing anything that uses models

from django.conf import settings  # noqa: E402

from conversations.api.asgi import api_read, serves  # noqa: E402
from conversations.webhooks.whatsapp_asgi import PATH as WHATSAPP_PATH  # noqa: E402
from conversations.webhooks.whatsapp_asgi import whatsapp_notification  # noqa: E402
from realtime.lifespan import lifespan  # noqa: E402
from realtime.routing import websocket  # noqa: E402
from taskmed.body_limit import limited  # noqa: E402
from taskmed.metrics import count_request  # noqa: E402

if settings.DEBUG:
    # The embedded setup has no nginx in front: serve static files here, as runserver would.
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

    django_http = ASGIStaticFilesHandler(django_http)
django_http = limited(django_http)


async def http(scope, receive, send) -> None:
    """The hot paths skip Django's handler and middleware (DESIGN §10): WhatsApp's notifications, and the
    API's reads by token clients; everything else is Django. Each answer is counted (/metrics)."""

    if scope["method"] == "POST" and scope["path"] == WHATSAPP_PATH:
        route, app = "whatsapp_webhook", whatsapp_notification
    elif serves(scope):
        route, app = "api_read", api_read
    else:
        route, app = "django", django_http

    began = time.perf_counter()

    async def counted(message) -> None:
        if message["type"] == "http.response.start":
            count_request(route, message["status"], time.perf_counter() - began)
        await send(message)

    await app(scope, receive, counted)


# By the scope's type, as Channels' ProtocolTypeRouter would, without one more coroutine kept for each
# socket's life (realtime.routing says why that counts).
PROTOCOLS = {
    "http": http,
    # The consumer reads the session cookie or the bearer token itself (realtime.auth), so the handshake
    # runs no session or auth middleware; the route checks the Origin.
    "websocket": websocket,
    # The hub starts with the process: it hears access changes before any socket connects.
    "lifespan": lifespan,
}


async def application(scope, receive, send) -> None:
    handler = PROTOCOLS.get(scope["type"])
    if handler is None:
        raise ValueError(f"No handler for ASGI scope type {scope['type']!r}")
    await handler(scope, receive, send)


# Everything loaded so far lives as long as the process: keep it out of the collector's full passes,
# which otherwise pause the loop for up to 90 ms under load (DESIGN §10).
gc.freeze()
