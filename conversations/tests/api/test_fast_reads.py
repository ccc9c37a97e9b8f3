"""The API's reads by token clients, served outside Django's handler (conversations/api/asgi.py): what they
answer is exactly what Django's handler answers, refusals included."""

from datetime import timedelta

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.core.signals import request_started
from rest_framework_simplejwt.tokens import AccessToken

from conversations.actions.inbound import receive_inbound_message
from conversations.api.asgi import serves
from realtime.tests.test_consumer import access_token
from taskmed.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)
SAME_HEADERS = (
    "content-type",
    "allow",
    "x-frame-options",
    "x-content-type-options",
    "referrer-policy",
    "cross-origin-opener-policy",
    "content-security-policy",
    "vary",
    "content-language",
)


async def get(path, token, *, through_django=False, method="GET", host="127.0.0.1", language="pt-BR"):
    headers = {"Authorization": f"Bearer {token}", "Accept-Language": language} if token else {}
    if through_django:
        headers["Cookie"] = "theme=light"  # any cookie sends the request the long way, through Django
    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url=f"http://{host}") as http:
        return await http.request(method, path, headers=headers)


@pytest.fixture
def two_conversations(clinic, other_clinic):
    ours = receive_inbound_message(clinic=clinic, phone="5511987654321", content="Oi").conversation
    theirs = receive_inbound_message(clinic=other_clinic, phone="5511912345678", content="Olá").conversation
    return ours, theirs


@pytest.fixture
def heard():
    started = []

    def saw(**kwargs):
        started.append(kwargs)

    request_started.connect(saw)
    yield started
    request_started.disconnect(saw)


def test_only_a_token_client_s_reads_of_conversations_and_contacts_take_the_short_way():
    def scope(method, path, *headers):
        return {"method": method, "path": path, "headers": list(headers)}

    bearer = (b"authorization", b"Bearer abc")
    assert serves(scope("GET", "/api/conversations/", bearer))
    assert serves(scope("HEAD", "/api/conversations/12/messages/", bearer))
    assert serves(scope("GET", "/api/contacts/7/", bearer))
    assert not serves(scope("GET", "/api/conversations/"))  # no token: the browser's session, in Django
    assert not serves(scope("GET", "/api/conversations/", bearer, (b"cookie", b"sessionid=x")))
    assert not serves(scope("POST", "/api/conversations/12/messages/", bearer))
    assert not serves(scope("GET", "/api/conversations/12/export/", bearer))
    assert not serves(scope("GET", "/api/auth/me/", bearer))


async def test_each_read_answers_as_django_s_handler_does(two_conversations, member, heard):
    ours, _ = two_conversations
    token = await sync_to_async(access_token)(member)
    contact = ours.contact_id
    for path in (
        "/api/conversations/",
        "/api/conversations/?status=open&search=oi",
        f"/api/conversations/{ours.pk}/",
        f"/api/conversations/{ours.pk}/messages/",
        f"/api/conversations/{ours.pk}/actions/",
        "/api/contacts/",
        f"/api/contacts/{contact}/",
    ):
        heard.clear()
        fast = await get(path, token)
        assert heard == [], f"{path} went through Django's handler"
        slow = await get(path, token, through_django=True)
        assert heard, "a request with a cookie goes through Django's handler"
        assert fast.status_code == slow.status_code == 200, (path, fast.content)
        assert fast.json() == slow.json(), path
        for name in SAME_HEADERS:
            assert fast.headers.get(name) == slow.headers.get(name), (path, name)
    assert "Oi" in str((await get(f"/api/conversations/{ours.pk}/messages/", token)).json())


async def test_refusals_are_django_s_too(two_conversations, member, heard):
    ours, theirs = two_conversations
    token = await sync_to_async(access_token)(member)
    expired = AccessToken(token)
    expired.set_exp(lifetime=-timedelta(seconds=1))
    cases = [
        (f"/api/conversations/{theirs.pk}/", token, 404),  # another clinic's conversation does not exist here
        (f"/api/conversations/{theirs.pk}/messages/", token, 404),
        (f"/api/contacts/{theirs.contact_id}/", token, 404),
        ("/api/conversations/999999/", token, 404),
        ("/api/conversations/", str(expired), 401),
        ("/api/conversations/", "not-a-token", 401),
        ("/api/conversations/?status=lost", token, 400),
    ]
    for path, bearer, status in cases:
        fast, slow = await get(path, bearer), await get(path, bearer, through_django=True)
        assert fast.status_code == slow.status_code == status, (path, fast.status_code, fast.content)
        assert fast.json() == slow.json() and "code" in str(fast.json()), path
    missing = "/api/conversations/999999/"
    english = await get(missing, token, language="en")
    assert english.json() == (await get(missing, token, language="en", through_django=True)).json()
    assert english.headers["content-language"] == "en"
    assert (await get(missing, token)).headers["content-language"] == "pt-br", "in the caller's language"
    heard.clear()
    bad_host = await get("/api/conversations/", token, host="evil.example")
    assert bad_host.status_code == 400 and heard == []


async def test_head_has_the_headers_and_no_body(two_conversations, member):
    token = await sync_to_async(access_token)(member)
    head, body = await get("/api/conversations/", token, method="HEAD"), await get("/api/conversations/", token)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-type"] == body.headers["content-type"] == "application/json"
