"""Limits the server process itself enforces, probed from outside through a real uvicorn (taskmed.serve)."""

import asyncio
import json
import urllib.error
import urllib.request

import pytest
from channels.db import database_sync_to_async
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from realtime.frames import MAX_FRAME_BYTES
from realtime.tests.test_consumer import access_token
from realtime.tests.test_scale_out import server_env

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]


async def test_a_frame_over_the_protocol_limit_is_refused_by_the_server_and_others_are_unaffected(serve, member):
    token = await database_sync_to_async(access_token)(member)
    host = serve(server_env())
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        connect(f"ws://{host}/ws/", additional_headers=headers, origin=f"http://{host}") as big,
        connect(f"ws://{host}/ws/", additional_headers=headers, origin=f"http://{host}") as other,
    ):
        assert json.loads(await big.recv())["type"] == "hello"
        assert json.loads(await other.recv())["type"] == "hello"
        await big.send(json.dumps({"type": "ping", "pad": "x" * MAX_FRAME_BYTES}))
        with pytest.raises(ConnectionClosed) as closed:
            # not an error frame: uvicorn closes before buffering it all; presence sent before the close may come first
            while True:
                assert json.loads(await asyncio.wait_for(big.recv(), 5))["type"] == "user:status"
        assert closed.value.rcvd.code == 1009  # message too big
        await other.send(json.dumps({"type": "ping"}))
        while (frame := json.loads(await asyncio.wait_for(other.recv(), 5)))["type"] != "pong":
            assert frame["type"] == "user:status"  # presence only: no error, no close


def token_attempts(host: str, forwarded_for: list[str]) -> list[int]:
    codes = []
    for address in forwarded_for:
        request = urllib.request.Request(
            f"http://{host}/api/auth/token/",
            data=json.dumps({"username": "nobody", "password": "wrong"}).encode(),
            headers={"Content-Type": "application/json", "X-Forwarded-For": address},
        )
        try:
            urllib.request.urlopen(request, timeout=10)
        except urllib.error.HTTPError as answer:
            codes.append(answer.code)
    return codes


def test_forwarded_for_is_believed_only_from_a_trusted_proxy(serve, transactional_db):
    addresses = [f"203.0.113.{n}" for n in range(4)]
    direct = serve(server_env(API_THROTTLE_AUTH="3/hour"))
    assert token_attempts(direct, addresses) == [401, 401, 401, 429], "a client's own header is not believed"
    behind_proxy = serve(server_env(API_THROTTLE_AUTH="3/hour", TRUSTED_PROXIES="127.0.0.1"))
    assert token_attempts(behind_proxy, addresses) == [401, 401, 401, 401], "the trusted proxy names each client"


def login_attempts(host: str, forwarded_for: list[str]) -> list[int]:
    """The browser's login form, as a browser posts it (its CSRF cookie and token), once per address."""
    import httpx

    codes = []
    for address in forwarded_for:
        with httpx.Client(base_url=f"http://{host}", timeout=10) as browser:
            browser.get("/accounts/login/")
            form = {"username": "nobody", "password": "wrong", "csrfmiddlewaretoken": browser.cookies["csrftoken"]}
            codes.append(browser.post("/accounts/login/", data=form, headers={"X-Forwarded-For": address}).status_code)
    return codes


def test_the_browser_login_believes_forwarded_for_only_from_a_trusted_proxy(serve, transactional_db):
    addresses = [f"203.0.113.{n}" for n in range(4)]
    direct = serve(server_env(API_THROTTLE_AUTH="3/hour"))
    assert login_attempts(direct, addresses) == [200, 200, 200, 429], "a client's own header is not believed"
    behind_proxy = serve(server_env(API_THROTTLE_AUTH="3/hour", TRUSTED_PROXIES="127.0.0.1"))
    assert login_attempts(behind_proxy, addresses) == [200, 200, 200, 200], "the trusted proxy names each client"
