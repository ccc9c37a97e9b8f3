"""The API's reads for token clients, served from ASGI straight to their DRF views (DESIGN §10).

Django's ASGI handler starts a thread for every request and runs the whole middleware chain (sessions,
CSRF, authentication, messages, locale): measured, 3.7 ms of a request that does nothing. A GET of the
conversations or contacts that carries `Authorization: Bearer` and no cookie needs none of that — DRF
authenticates the token itself — so it is handed to the same view on one of realtime.db's threads (whose
connections stay open), behind the middleware a JSON response does need (the Host check, the
language, security headers, frame options, CSP). What it answers is what Django's handler would;
anything else goes to Django.
"""

import io
import re

from django.core.handlers.asgi import ASGIRequest
from django.core.handlers.base import BaseHandler
from django.core.handlers.exception import convert_exception_to_response
from django.utils.module_loading import import_string

from conversations.unavailable import DatabaseUnavailableMiddleware
from realtime import db

READS = re.compile(r"^/api/(conversations|contacts)/([0-9]+/)?(messages/|actions/|notes/)?$")
MIDDLEWARE = (
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.locale.LocaleMiddleware",  # errors in the caller's language, as Django would
    "django.middleware.common.CommonMiddleware",  # the Host checked against ALLOWED_HOSTS
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
)


class ReadHandler(BaseHandler):
    """Django's handling of a request — URL resolution, the view, errors as responses — with MIDDLEWARE."""

    def __init__(self):
        super().__init__()
        self._view_middleware, self._template_response_middleware = [], []
        # As MIDDLEWARE's: a database that cannot be reached is a 503 here too.
        self._exception_middleware = [DatabaseUnavailableMiddleware(None).process_exception]
        chain = convert_exception_to_response(self._get_response)
        for path in reversed(MIDDLEWARE):
            chain = convert_exception_to_response(import_string(path)(chain))
        self._middleware_chain = chain


_handler: ReadHandler | None = None


def serves(scope) -> bool:
    """A token client's read of the conversations or contacts (no cookie: a browser goes through Django)."""
    if scope["method"] not in ("GET", "HEAD") or not READS.match(scope["path"]):
        return False
    bearer = False
    for name, value in scope["headers"]:
        if name == b"cookie":
            return False
        if name == b"authorization" and value[:7].lower() == b"bearer ":
            bearer = True
    return bearer


def _respond(scope) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    global _handler
    if _handler is None:
        _handler = ReadHandler()
    response = _handler.get_response(ASGIRequest(scope, io.BytesIO()))
    try:
        body = response.content
        headers = [(name.encode("ascii"), value.encode("latin1")) for name, value in response.items()]
        headers += [(b"Set-Cookie", c.OutputString().encode("ascii")) for c in response.cookies.values()]
        return response.status_code, headers, body
    finally:
        response.close()


async def api_read(scope, receive, send) -> None:
    status, headers, body = await db.run(_respond, scope)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})
