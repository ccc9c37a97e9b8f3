"""The largest request body the server reads, enforced before Django spools it to memory or disk.

Django's ASGI handler reads the whole body into a temporary file before any view runs, so a view's own
limits come too late to keep a 10 GB upload off the disk. Here a body declared too large is answered 413
unread; one that grows past the limit without declaring its size (chunked) is cut off at the limit and
answered 413 too. nginx's `client_max_body_size` does the same in front (deploy/), this is for when
nothing is in front.
"""

import logging

import orjson
from django.conf import settings

logger = logging.getLogger(__name__)


async def _too_large(send, limit: int) -> None:
    body = orjson.dumps({"code": "too_large", "detail": f"Requests hold at most {limit // (1024 * 1024)} MB."})
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def limited(app):
    """`app` with request bodies over settings.MAX_REQUEST_BYTES refused (413, logged)."""

    async def guarded(scope, receive, send) -> None:
        limit = settings.MAX_REQUEST_BYTES
        declared = next((value for name, value in scope["headers"] if name.lower() == b"content-length"), b"")
        if declared.isdigit() and int(declared) > limit:
            logger.warning(
                "%s %s refused: a body of %s bytes (limit %s)", scope["method"], scope["path"], int(declared), limit
            )
            await _too_large(send, limit)
            return
        state = {"read": 0, "over": False, "started": False}

        async def receive_within_limit():
            message = await receive()
            if message["type"] == "http.request":
                state["read"] += len(message.get("body", b""))
                if state["read"] > limit:
                    state["over"] = True
                    return {"type": "http.disconnect"}  # Django drops what it read and answers nothing
            return message

        async def send_tracked(message):
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        await app(scope, receive_within_limit, send_tracked)
        if state["over"] and not state["started"]:
            logger.warning("%s %s refused: the body grew past %s bytes", scope["method"], scope["path"], limit)
            await _too_large(send, limit)

    return guarded
