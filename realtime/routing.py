"""The WebSocket route: one endpoint, /ws/, for the whole event stream.

One function instead of Channels' URLRouter inside AllowedHostsOriginValidator (a departure of DESIGN §10,
measured in docs/benchmarks.md): each of those wrappers keeps a suspended coroutine and its own copy of the
scope for as long as the socket is open, ≈ 1.5 KB a connection. The Origin is checked by Channels' own
validator against ALLOWED_HOSTS, and a refusal is Channels' own (the handshake answered 403).
"""

from urllib.parse import urlparse

from channels.security.websocket import AllowedHostsOriginValidator, WebsocketDenier

from realtime.consumer import ClinicConsumer

PATH = "/ws/"


def _origin(scope) -> object | None:
    for name, value in scope.get("headers", ()):
        if name == b"origin":
            try:
                return urlparse(value.decode("latin-1"))
            except ValueError:
                return None
    return None


async def websocket(scope, receive, send) -> None:
    # Read when the first socket connects (settings are final by then, and tests may change them).
    if scope["path"] != PATH or not AllowedHostsOriginValidator(None).valid_origin(_origin(scope)):
        await WebsocketDenier()(scope, receive, send)
        return
    await ClinicConsumer()(scope, receive, send)
