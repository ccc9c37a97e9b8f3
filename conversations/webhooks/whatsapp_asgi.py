"""`POST /webhooks/whatsapp/` served straight from ASGI, outside Django's handler and middleware (DESIGN §10).

The hot path of the product: every patient message arrives here. Django's ASGI handler would start a
thread for the request and run the whole middleware chain (sessions, CSRF, auth, messages, CSP), none of
which a signed machine-to-machine notification needs. Here the body is read on the event loop and the
Host is checked against ALLOWED_HOSTS (as Django would); the signature is checked on the loop too, with
the channels held in memory (one HMAC at most; an address refused too often is answered 429 first): a
stranger's request never takes a database thread, so it never queues behind sockets being authenticated.
The usual notification is then stored without leaving the loop (one statement on the loop's
connections), and anything else on realtime.db's threads, whose connections stay open. What it answers is
what the Django view answers.
"""

import asyncio
import logging

import orjson
from django.conf import settings
from django.db import DatabaseError
from django.http.request import split_domain_port, validate_host

from conversations.webhooks import whatsapp_channels
from conversations.webhooks.whatsapp import checked, receive_notification_on_loop, receive_verified
from realtime import db

logger = logging.getLogger(__name__)
PATH = "/webhooks/whatsapp/"


def _allowed_hosts() -> list[str]:
    if settings.DEBUG and not settings.ALLOWED_HOSTS:
        return [".localhost", "127.0.0.1", "[::1]"]  # as Django allows in development
    return settings.ALLOWED_HOSTS


async def _answer(send, status: int, body: dict) -> None:
    payload = orjson.dumps(body)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    if "retry_after" in body:
        headers.append((b"retry-after", str(body["retry_after"]).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


async def _body(receive, limit: int) -> bytes | None:
    """The request body, or None when it passes `limit` bytes (nothing more is read)."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionError("the client went away before sending the whole body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def whatsapp_notification(scope, receive, send) -> None:
    headers = {name.lower(): value for name, value in scope["headers"]}
    host = headers.get(b"host", b"").decode("latin-1")
    domain, _port = split_domain_port(host)
    if not domain or not validate_host(domain, _allowed_hosts()):
        logger.warning("whatsapp webhook for a host not in ALLOWED_HOSTS refused: %r", host[:80])
        await _answer(send, 400, {"code": "bad_host", "detail": "The Host header is not one this server serves."})
        return
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    declared = headers.get(b"content-length", b"")
    if declared.isdigit() and limit is not None and int(declared) > limit:
        await _answer(send, 413, {"code": "too_large", "detail": "The notification is too large."})
        return
    try:
        body = await _body(receive, limit if limit is not None else 1 << 62)
    except ConnectionError:
        return
    if body is None:
        await _answer(send, 413, {"code": "too_large", "detail": "The notification is too large."})
        return
    try:
        channels = await _channels()
    except DatabaseError:
        logger.exception("whatsapp webhook: the channels could not be read; Meta will retry")
        await _answer(send, 503, {"code": "unavailable", "detail": "Could not store it now; retry."})
        return
    signature = headers.get(b"x-hub-signature-256", b"").decode("latin-1")
    secret, refused = checked(body, signature, (scope.get("client") or ("?",))[0], channels)
    if refused is not None:
        await _answer(send, *refused)
        return
    answer = await receive_notification_on_loop(body, secret, channels)
    if answer is None:
        answer = await db.run(receive_verified, body, secret)
    await _answer(send, *answer)


_loading: asyncio.Task | None = None


async def _channels() -> whatsapp_channels.Directory:
    """The channels held in memory; when they must be read again, one read on a database thread serves every
    request waiting for it (a flood of strangers at that moment starts one, not one each)."""
    global _loading
    found = whatsapp_channels.fresh()
    if found is not None:
        return found
    loop = asyncio.get_running_loop()
    if _loading is None or _loading.done() or _loading.get_loop() is not loop:
        _loading = loop.create_task(db.run(whatsapp_channels.directory))
    return await asyncio.shield(_loading)
