"""Request bodies over MAX_REQUEST_BYTES are refused before Django reads them (taskmed.body_limit)."""

import json

import pytest
from asgiref.testing import ApplicationCommunicator

from taskmed.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)


def scope(path: str, headers: list[tuple[bytes, bytes]]) -> dict:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


async def answer(app: ApplicationCommunicator) -> tuple[int, dict]:
    start = await app.receive_output(5)
    body = await app.receive_output(5)
    return start["status"], json.loads(body["body"])


async def test_a_body_declared_over_the_limit_is_refused_unread(settings):
    settings.MAX_REQUEST_BYTES = 1024 * 1024
    upload = ApplicationCommunicator(
        application, scope("/api/conversations/1/messages/", [(b"content-length", str(200 * 1024 * 1024).encode())])
    )
    status, body = await answer(upload)  # answered before a single byte of the body was sent
    assert status == 413 and body["code"] == "too_large"
    await upload.wait(5)


async def test_a_body_that_grows_past_the_limit_unannounced_is_cut_off(settings):
    settings.MAX_REQUEST_BYTES = 64 * 1024
    upload = ApplicationCommunicator(application, scope("/api/conversations/1/messages/", []))
    for _ in range(10):  # 160 KB in chunks, no Content-Length
        await upload.send_input({"type": "http.request", "body": b"x" * 16 * 1024, "more_body": True})
    status, body = await answer(upload)
    assert status == 413 and body["code"] == "too_large"
    await upload.wait(5)


async def test_a_body_within_the_limit_reaches_django(settings):
    settings.MAX_REQUEST_BYTES = 64 * 1024
    login = ApplicationCommunicator(
        application, scope("/api/auth/token/", [(b"content-type", b"application/json"), (b"content-length", b"2")])
    )
    await login.send_input({"type": "http.request", "body": b"{}"})
    status, body = await answer(login)
    assert status == 400 and body["field"] in ("username", "password")
