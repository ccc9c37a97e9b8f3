"""The ASGI application: Django over HTTP and the event stream over WebSocket, served by uvicorn."""

import gc
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "taskmed.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

django_http = get_asgi_application()  # set up Django before importing anything that uses models

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402

from conversations.webhooks.whatsapp_asgi import with_fast_webhook  # noqa: E402
from realtime.routing import websocket_urlpatterns  # noqa: E402

if settings.DEBUG:
    # The embedded setup has no nginx in front: serve static files here, as runserver would.
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

    django_http = ASGIStaticFilesHandler(django_http)

application = ProtocolTypeRouter(
    {
        # WhatsApp's notifications skip Django's handler and middleware (DESIGN §10); the rest is Django.
        "http": with_fast_webhook(django_http),
        # The consumer reads the session cookie or the bearer token itself (realtime.auth), so the
        # handshake runs no session or auth middleware; the Origin is checked here.
        "websocket": AllowedHostsOriginValidator(URLRouter(websocket_urlpatterns)),
    }
)

# Everything loaded so far lives as long as the process: keep it out of the collector's full passes,
# which otherwise pause the loop for up to 90 ms under load (DESIGN §10).
gc.freeze()
