"""The /ws/ protocol as clients use it: authentication and close codes, the clinic's frames and nobody
else's, joins, typing, reads, resume without gaps or duplicates, limits, and losing access while open."""

import asyncio
import json
import threading
import time
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.sessions.models import Session
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

from conversations.access import SESSION_KEY
from conversations.actions.inbound import receive_inbound_message
from conversations.models import Membership, ReadMarker
from realtime import auth, presence
from realtime.models import Event
from taskmed.asgi import application

ORIGIN = (b"origin", b"http://127.0.0.1")
pytestmark = pytest.mark.django_db(transaction=True)


def forget_presence(settings) -> None:
    """Presence lives in Redis between runs while test ids restart: start each test with none."""
    presence.reset_store()
    if settings.REDIS_URL:
        import redis

        client = redis.Redis.from_url(settings.REDIS_URL)
        for key in client.scan_iter(f"{settings.REDIS_PREFIX}:presence:*"):
            client.delete(key)


@pytest.fixture(autouse=True)
def quick_timers(settings):
    settings.WS_AUTH_TIMEOUT_SECONDS = 1.5  # long enough for a cold token check on a loaded machine
    forget_presence(settings)
    yield
    presence.reset_store()


def browser_signed_in(user, clinic=None) -> tuple[Client, bytes]:
    """A browser signed in (with `clinic` chosen), and its session cookie for the socket."""
    browser = Client()
    browser.force_login(user)
    if clinic is not None:
        session = browser.session
        session[SESSION_KEY] = clinic.pk
        session.save()
    return browser, f"sessionid={browser.cookies['sessionid'].value}".encode()


def session_cookie(user, clinic=None) -> bytes:
    return browser_signed_in(user, clinic)[1]


def access_token(user) -> str:
    client = APIClient()
    return client.post(
        "/api/auth/token/", {"username": user.username, "password": "senha-de-teste-123"}, format="json"
    ).json()["access"]


async def connect(headers=(), path="/ws/", origin=ORIGIN) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application, path, headers=[origin, *headers])
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    return communicator


async def as_member(user, clinic, path="/ws/") -> WebsocketCommunicator:
    ws = await connect([(b"cookie", await database_sync_to_async(session_cookie)(user, clinic))], path=path)
    assert (await frame(ws))["type"] == "hello"
    return ws


async def frame(ws, *, durable_only=False) -> dict:
    while True:
        received = json.loads(await ws.receive_from(timeout=5))
        if not durable_only or "seq" in received and received["type"] not in ("hello", "pong", "resumed", "resync"):
            return received


async def reply(ws) -> dict:
    """The next frame that is not a presence announcement (those may arrive at any time)."""
    while (received := await frame(ws))["type"] == "user:status":
        pass
    return received


async def closed_with(ws) -> int:
    while True:
        output = await ws.receive_output(timeout=5)
        if output["type"] == "websocket.close":
            return output["code"]


def receive(clinic, content="Oi", phone="5511987654321", **fields):
    return receive_inbound_message(clinic=clinic, phone=phone, content=content, **fields)


# --- Authentication ---------------------------------------------------------------------------------


async def test_a_session_member_gets_hello_and_is_announced_online(clinic, member):
    ws = await connect([(b"cookie", await database_sync_to_async(session_cookie)(member, clinic))])
    hello = await frame(ws)
    assert hello["type"] == "hello" and hello["seq"] == 0
    assert hello["user"] == {"id": member.pk, "name": "Júlia Carvalho", "role": "receptionist"}
    assert hello["clinic"]["id"] == clinic.pk and hello["clinic"]["timezone"] == "America/Sao_Paulo"
    status = await frame(ws)
    assert status["type"] == "user:status" and status["data"] == {
        "user_id": member.pk,
        "status": "online",
        "version": status["data"]["version"],
    }
    assert status["data"]["version"] > 0, "screens order one user's announcements by it"
    await ws.disconnect()


async def test_a_bearer_header_authenticates(clinic, member):
    token = await database_sync_to_async(access_token)(member)
    ws = await connect([(b"authorization", f"Bearer {token}".encode())])
    assert (await frame(ws))["user"]["id"] == member.pk
    await ws.disconnect()


async def test_an_auth_frame_authenticates(clinic, member):
    token = await database_sync_to_async(access_token)(member)
    ws = await connect()
    await ws.send_to(text_data=json.dumps({"type": "auth", "token": token}))
    assert (await frame(ws))["type"] == "hello"
    await ws.disconnect()


async def test_no_auth_within_the_deadline_closes_4408():
    ws = await connect()
    assert await closed_with(ws) == 4408


@pytest.mark.parametrize("sent", [{"type": "ping"}, {"type": "resume", "after": 0}])
async def test_other_frames_before_auth_close_4401(sent):
    ws = await connect()
    await ws.send_to(text_data=json.dumps(sent))
    assert await closed_with(ws) == 4401


async def test_a_token_in_the_query_string_is_refused(clinic, member):
    token = await database_sync_to_async(access_token)(member)
    ws = await connect(path=f"/ws/?token={token}")
    assert await closed_with(ws) == 4401


@pytest.mark.parametrize("case", ["garbage", "expired", "inactive", "logged_out"])
async def test_bad_tokens_close_4401(clinic, member, case):
    token = await database_sync_to_async(access_token)(member)
    if case == "garbage":
        token = "not.a.jwt"
    elif case == "expired":
        expired = AccessToken(token)
        expired.set_exp(lifetime=-timedelta(seconds=1))
        token = str(expired)
    elif case == "inactive":
        await database_sync_to_async(lambda: type(member).objects.filter(pk=member.pk).update(is_active=False))()
    else:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        await database_sync_to_async(lambda: client.post("/api/auth/logout/", {}, format="json"))()
    ws = await connect([(b"authorization", f"Bearer {token}".encode())])
    assert await closed_with(ws) == 4401


async def test_a_removed_membership_closes_4403_at_connect(clinic, member):
    cookie = await database_sync_to_async(session_cookie)(member, clinic)
    await database_sync_to_async(lambda: Membership.objects.filter(user=member).delete())()
    ws = await connect([(b"cookie", cookie)])
    assert await closed_with(ws) == 4403


async def test_a_foreign_origin_is_refused(clinic, member):
    cookie = await database_sync_to_async(session_cookie)(member, clinic)
    communicator = WebsocketCommunicator(
        application, "/ws/", headers=[(b"origin", b"https://evil.example"), (b"cookie", cookie)]
    )
    connected, _ = await communicator.connect(timeout=5)
    assert not connected


async def test_a_socket_to_any_other_path_is_refused_at_the_handshake(clinic, member):
    cookie = await database_sync_to_async(session_cookie)(member, clinic)
    for path in ("/ws", "/ws/other/", "/websocket/"):
        communicator = WebsocketCommunicator(application, path, headers=[ORIGIN, (b"cookie", cookie)])
        connected, _ = await communicator.connect(timeout=5)
        assert not connected, path


async def test_the_clinic_in_the_url_is_a_routing_hint_checked_for_form_and_never_trusted(clinic, member, other_clinic):
    cookie = await database_sync_to_async(session_cookie)(member, clinic)
    ws = await connect([(b"cookie", cookie)], path=f"/ws/?clinic={other_clinic.id}")
    hello = await frame(ws)
    assert hello["type"] == "hello" and hello["clinic"]["id"] == clinic.id, "the login's clinic, not the URL's"
    await ws.disconnect()
    ws = await connect([(b"cookie", cookie)], path="/ws/?clinic=abc")
    assert await closed_with(ws) == 4400


def deactivate(user) -> None:
    """As support does it in the admin: the user is saved inactive."""
    user.is_active = False
    user.save()


def change_password(user) -> None:
    """As `manage.py changepassword` (or the admin, or a reset) does it: a new password, saved."""
    user.set_password("uma-senha-nova-e-longa-456")
    user.save()


@pytest.mark.parametrize("change", ["membership", "deactivate", "logout", "expiry", "password"])
async def test_losing_access_while_connected_closes_the_socket_at_once(settings, clinic, member, change):
    """Access changes are announced, not polled for: with no periodic re-check at all, the socket closes."""
    settings.WS_RECHECK_SECONDS = 3600
    token = await database_sync_to_async(access_token)(member)
    if change == "expiry":
        short = AccessToken(token)
        short.set_exp(lifetime=timedelta(seconds=3))  # whole seconds: it lives 2–3 s, past the handshake
        token = str(short)
    ws = await connect([(b"authorization", f"Bearer {token}".encode())])
    await frame(ws)
    if change == "membership":
        await database_sync_to_async(lambda: Membership.objects.filter(user=member).delete())()
    elif change == "deactivate":
        await database_sync_to_async(deactivate)(member)
    elif change == "logout":
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        await database_sync_to_async(lambda: client.post("/api/auth/logout/", {}, format="json"))()
    elif change == "password":
        await database_sync_to_async(change_password)(member)
    assert await closed_with(ws) == (4403 if change == "membership" else 4401)


async def test_switching_clinic_moves_the_sessions_stream_to_the_new_clinic_at_once(
    settings, clinic, other_clinic, member
):
    """A user of two clinics switches in another tab: the socket of the old clinic closes (its page reloads),
    and the same session's next socket is the new clinic's, though the old one's caller was cached."""
    settings.WS_RECHECK_SECONDS = 3600
    await database_sync_to_async(Membership.objects.create)(user=member, clinic=other_clinic, role="admin")
    browser, cookie = await database_sync_to_async(browser_signed_in)(member, clinic)
    ws = await connect([(b"cookie", cookie)])
    assert (await frame(ws))["clinic"]["id"] == clinic.pk

    switched = await database_sync_to_async(browser.post)("/clinics/", {"clinic_id": other_clinic.pk})
    assert switched.status_code == 302
    assert await closed_with(ws) == 4403
    again = await connect([(b"cookie", cookie)])
    assert (await frame(again))["clinic"]["id"] == other_clinic.pk
    await again.disconnect()


async def test_a_browser_session_extended_meanwhile_closes_the_socket_at_its_new_end(settings, clinic, member):
    """At the session's first end the socket looks again and finds it extended: it stays open, and closes
    at the new end (with nothing else re-checking it)."""
    settings.WS_RECHECK_SECONDS = 3600

    def short_session() -> bytes:
        browser, cookie = browser_signed_in(member, clinic)
        session = browser.session
        session.set_expiry(3)
        session.save()
        return cookie

    ws = await connect([(b"cookie", await database_sync_to_async(short_session)())])
    assert (await frame(ws))["type"] == "hello"
    # Extended, as a page load does:
    extended = await database_sync_to_async(
        lambda: Session.objects.update(expire_date=timezone.now() + timedelta(seconds=6))
    )()
    assert extended == 1
    opened = time.monotonic()
    await asyncio.sleep(4)  # past the first end, well before the new one
    await ws.send_to(text_data='{"type": "ping"}')
    assert (await reply(ws))["type"] == "pong", "still open: the session was extended"
    assert await closed_with(ws) == 4401
    assert time.monotonic() - opened >= 5


async def test_access_lost_while_the_connection_is_being_checked_still_closes_it(settings, clinic, member, monkeypatch):
    """The membership is removed after the connection's check read it but before the connection was
    watched: the announcement finds no socket to close, yet the socket closes, and the stale answer is
    not kept for the next connection."""
    settings.WS_RECHECK_SECONDS = 3600
    token = await database_sync_to_async(access_token)(member)
    bearer = [(b"authorization", f"Bearer {token}".encode())]
    access = auth.access()
    checked, go_on = threading.Event(), threading.Event()
    real_check = access.caller_for_token

    def check_held_up(claims):
        caller = real_check(claims)  # the membership as it is now
        checked.set()
        go_on.wait(10)
        return caller

    monkeypatch.setattr(access, "caller_for_token", check_held_up)
    connecting = asyncio.create_task(connect(bearer))
    assert await asyncio.to_thread(checked.wait, 10)
    await database_sync_to_async(lambda: Membership.objects.filter(user=member).delete())()
    await asyncio.sleep(0.2)  # the announcement is handled, with no socket of this user watched yet
    go_on.set()
    ws = await connecting
    assert await closed_with(ws) == 4403
    again = await connect(bearer)
    assert await closed_with(again) == 4403


async def test_a_change_that_keeps_access_keeps_the_socket(settings, clinic, member, make_member):
    """A colleague's access changing, or this user's own role, closes nothing."""
    settings.WS_RECHECK_SECONDS = 3600
    colleague = await database_sync_to_async(make_member)(clinic)
    ws = await as_member(member, clinic)
    await database_sync_to_async(deactivate)(colleague)
    await database_sync_to_async(lambda: Membership.objects.filter(user=member).update(role="admin"))()
    await database_sync_to_async(lambda: Membership.objects.get(user=member).save())()
    await ws.send_to(text_data='{"type": "ping"}')
    assert (await reply(ws))["type"] == "pong"
    await ws.disconnect()


async def test_when_the_access_check_itself_fails_the_socket_closes_1011(settings, clinic, member, monkeypatch):
    """A connection never lives on unchecked: if a re-check cannot run, the client reconnects."""
    from realtime import auth

    def database_down(caller):
        raise OSError("the database is unreachable")

    ws = await as_member(member, clinic)
    monkeypatch.setattr(auth.access(), "still_allowed", database_down)
    member.first_name = "Júlia Maria"
    await database_sync_to_async(member.save)()
    assert await closed_with(ws) == 1011


async def test_a_client_gone_in_the_middle_of_a_replay_ends_the_connection_quietly(clinic, member, caplog):
    """The server finds the client gone while sending (uvicorn raises ClientDisconnected, an OSError): the
    connection sends nothing more, leaves its clinic's feed and presence, and ends without an error."""
    await database_sync_to_async(lambda: [receive(clinic, f"m{n}", external_id=f"w{n}") for n in range(3)])()
    token = await database_sync_to_async(access_token)(member)
    from_client: asyncio.Queue = asyncio.Queue()
    from_client.put_nowait({"type": "websocket.connect"})
    from_client.put_nowait({"type": "websocket.receive", "text": json.dumps({"type": "resume", "after": 0})})
    sent = []

    async def send(message):
        if message["type"] == "websocket.send" and '"message:new"' in message["text"]:
            # As uvicorn does: the send fails, and the connection's end is queued for the application.
            from_client.put_nowait({"type": "websocket.disconnect", "code": 1006})
            raise OSError("client disconnected")
        sent.append(message)

    scope = {
        "type": "websocket",
        "path": "/ws/",
        "query_string": b"",
        "headers": [ORIGIN, (b"host", b"127.0.0.1"), (b"authorization", f"Bearer {token}".encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "subprotocols": [],
    }
    await asyncio.wait_for(application(scope, from_client.get, send), 5)  # returns: no hang, no exception
    frames = [json.loads(m["text"]) for m in sent[1:] if m["type"] == "websocket.send"]
    assert sent[0]["type"] == "websocket.accept" and frames[0]["type"] == "hello"
    assert [f["seq"] for f in frames if f["type"] != "hello" and "seq" in f] == [1], "the replay stopped at the failure"
    assert "Traceback" not in caplog.text and "failed" not in caplog.text
    for _ in range(50):
        if not await presence.online_users(clinic.pk):
            break
        await asyncio.sleep(0.02)
    assert await presence.online_users(clinic.pk) == [], "the connection left presence"


async def test_a_browser_logout_closes_the_socket(settings, clinic, member):
    settings.WS_RECHECK_SECONDS = 0.2
    browser, cookie = await database_sync_to_async(browser_signed_in)(member, clinic)
    ws = await connect([(b"cookie", cookie)])
    await frame(ws)
    await database_sync_to_async(browser.post)("/accounts/logout/")
    assert await closed_with(ws) == 4401


async def test_a_logout_closes_the_socket_however_late_django_ends_the_session(clinic, member):
    """Django tells of a logout before it deletes the session: the re-check it sets off must not run
    against a session still there (here, another receiver of the signal holds the flush up)."""
    import time

    from django.contrib.auth.signals import user_logged_out

    def slow_receiver(**kwargs) -> None:
        time.sleep(1)  # the re-check runs meanwhile

    browser, cookie = await database_sync_to_async(browser_signed_in)(member, clinic)
    ws = await connect([(b"cookie", cookie)])
    await frame(ws)
    user_logged_out.connect(slow_receiver, dispatch_uid="test-slow-logout")
    try:
        await database_sync_to_async(browser.post)("/accounts/logout/")
    finally:
        user_logged_out.disconnect(dispatch_uid="test-slow-logout")
    assert await closed_with(ws) == 4401


# --- Events and tenancy -----------------------------------------------------------------------------


async def test_durable_events_arrive_in_seq_order(clinic, member):
    ws = await as_member(member, clinic)
    await database_sync_to_async(receive)(clinic, "Oi")
    first, second = await frame(ws, durable_only=True), await frame(ws, durable_only=True)
    assert [(first["type"], first["seq"]), (second["type"], second["seq"])] == [
        ("conversation:new", 1),
        ("message:new", 2),
    ]
    assert second["data"]["message"]["content"] == "Oi"
    assert second["data"]["contact"]["display_name"] == "+55 11 98765-4321"
    await ws.disconnect()


async def test_another_clinics_connection_receives_nothing(clinic, other_clinic, member, outsider):
    ours, theirs = await as_member(member, clinic), await as_member(outsider, other_clinic)
    await database_sync_to_async(receive)(clinic, "sigilo")
    assert (await frame(ours, durable_only=True))["type"] == "conversation:new"
    await theirs.send_to(text_data='{"type": "ping"}')
    answer = await frame(theirs, durable_only=False)
    while answer["type"] == "user:status":
        assert answer["data"]["user_id"] == outsider.pk, "presence of another clinic leaked"
        answer = await frame(theirs)
    assert answer == {"type": "pong", "seq": 0}
    await ours.disconnect()
    await theirs.disconnect()


async def test_another_clinics_conversation_cannot_be_joined(clinic, other_clinic, outsider):
    conversation = await database_sync_to_async(lambda: receive(clinic).conversation)()
    ws = await as_member(outsider, other_clinic)
    await ws.send_to(text_data=json.dumps({"type": "conversation:join", "conversation_id": conversation.pk}))
    error = await frame(ws)
    while error["type"] == "user:status":
        error = await frame(ws)
    assert error["type"] == "error" and error["code"] == "not_found"
    await ws.send_to(
        text_data=json.dumps({"type": "conversation:typing", "conversation_id": conversation.pk, "is_typing": True})
    )
    assert (await reply(ws))["code"] == "not_joined"
    await ws.disconnect()


async def test_another_clinics_message_cannot_be_marked_read(clinic, other_clinic, outsider):
    message = await database_sync_to_async(lambda: receive(clinic).message)()
    ws = await as_member(outsider, other_clinic)
    await ws.send_to(
        text_data=json.dumps(
            {"type": "message:read", "conversation_id": message.conversation_id, "message_id": message.pk}
        )
    )
    assert (await reply(ws))["code"] == "not_found"
    assert not await database_sync_to_async(ReadMarker.objects.exists)()
    await ws.disconnect()


async def test_a_resume_from_another_clinic_replays_only_its_own_log(clinic, other_clinic, member, outsider):
    """Seqs are per clinic: another clinic's `?after=0` or `resume` from 0 replays its own log, never ours."""
    await database_sync_to_async(receive)(clinic, "sigilo médico")  # our seqs 1, 2
    token = await database_sync_to_async(access_token)(outsider)
    for path in ("/ws/?after=0", "/ws/"):
        ws = await connect([(b"authorization", f"Bearer {token}".encode())], path=path)
        assert (await frame(ws))["type"] == "hello"
        await ws.send_to(text_data=json.dumps({"type": "resume", "after": 0}))
        seen = await frames_until_pong(ws)
        assert [f["type"] for f in seen if f["type"] not in ("user:status", "pong")] == ["resumed"] * (
            2 if path == "/ws/?after=0" else 1
        )
        assert "sigilo" not in json.dumps(seen)
        await ws.disconnect()


async def test_leaving_another_clinics_conversation_tells_that_clinic_nothing(clinic, other_clinic, member, outsider):
    conversation = await database_sync_to_async(lambda: receive(clinic).conversation)()
    ours, theirs = await as_member(member, clinic), await as_member(outsider, other_clinic)
    await theirs.send_to(text_data=json.dumps({"type": "conversation:leave", "conversation_id": conversation.pk}))
    assert (await reply(theirs)) == {"type": "conversation:left", "conversation_id": conversation.pk}
    assert not any(f["type"] == "conversation:viewing" for f in await frames_until_pong(ours))
    await ours.disconnect()
    await theirs.disconnect()


async def test_an_auth_frame_with_another_clinics_token_gets_only_that_clinics_stream(clinic, other_clinic, outsider):
    token = await database_sync_to_async(access_token)(outsider)
    ws = await connect()
    await ws.send_to(text_data=json.dumps({"type": "auth", "token": token}))
    hello = await frame(ws)
    assert hello["type"] == "hello" and hello["clinic"]["id"] == other_clinic.pk
    await database_sync_to_async(receive)(clinic, "sigilo")
    assert not any("seq" in f and f["type"] not in ("pong",) for f in await frames_until_pong(ws))
    await ws.disconnect()


# Each frame type a client may send, and the test above that proves it refuses or hides another clinic's
# objects. A new frame type fails here until it has one.
TENANCY_CHECKED = {
    "auth": test_an_auth_frame_with_another_clinics_token_gets_only_that_clinics_stream,
    "ping": test_another_clinics_connection_receives_nothing,
    "resume": test_a_resume_from_another_clinic_replays_only_its_own_log,
    "conversation:join": test_another_clinics_conversation_cannot_be_joined,
    "conversation:leave": test_leaving_another_clinics_conversation_tells_that_clinic_nothing,
    "conversation:typing": test_another_clinics_conversation_cannot_be_joined,
    "message:read": test_another_clinics_message_cannot_be_marked_read,
}


def test_every_frame_type_has_a_tenancy_check():
    from realtime.frames import SCHEMAS

    assert set(TENANCY_CHECKED) == set(SCHEMAS)


async def frames_until_pong(ws) -> list[dict]:
    await ws.send_to(text_data='{"type": "ping"}')
    seen = [await frame(ws)]
    while seen[-1]["type"] != "pong":
        seen.append(await frame(ws))
    return seen


async def test_typing_reaches_the_clinics_other_screens_but_not_the_sender_nor_another_clinic(
    clinic, member, make_member, other_clinic, outsider
):
    """The list shows "digitando…" on the row, so every screen of the clinic hears it, joined or not."""
    conversation = await database_sync_to_async(lambda: receive(clinic).conversation)()
    colleague = await database_sync_to_async(make_member)(clinic)
    typist, watcher, elsewhere = (
        await as_member(member, clinic),
        await as_member(colleague, clinic),
        await as_member(colleague, clinic),
    )
    stranger = await as_member(outsider, other_clinic)
    for ws in (typist, watcher):
        await ws.send_to(text_data=json.dumps({"type": "conversation:join", "conversation_id": conversation.pk}))
        while (await reply(ws))["type"] != "conversation:joined":
            pass  # a colleague's "viewing" may come first
    typing = {"type": "conversation:typing", "conversation_id": conversation.pk, "is_typing": True}
    await typist.send_to(text_data=json.dumps(typing))
    await typist.send_to(text_data=json.dumps(typing))  # throttled: nobody hears it twice

    for ws in (watcher, elsewhere):
        seen = [await frame(ws)]
        while seen[-1]["type"] != "conversation:typing":
            seen.append(await frame(ws))
        seen += await frames_until_pong(ws)
        hints = [f for f in seen if f["type"] == "conversation:typing"]
        assert len(hints) == 1, "one hint, the repeat throttled"
        assert (hints[0]["conversation_id"], hints[0]["data"]["user"]["id"], hints[0]["data"]["is_typing"]) == (
            conversation.pk,
            member.pk,
            True,
        )
    assert not any(f["type"] == "conversation:typing" for f in await frames_until_pong(typist))
    assert not any(
        f["type"] in ("conversation:typing", "conversation:viewing") for f in await frames_until_pong(stranger)
    ), "another clinic hears nothing"
    for ws in (typist, watcher, elsewhere, stranger):
        await ws.disconnect()


async def test_colleagues_see_who_opens_and_leaves_a_conversation(clinic, member, make_member):
    conversation = await database_sync_to_async(lambda: receive(clinic).conversation)()
    colleague = await database_sync_to_async(make_member)(clinic)
    viewer, other = await as_member(member, clinic), await as_member(colleague, clinic)
    await viewer.send_to(text_data=json.dumps({"type": "conversation:join", "conversation_id": conversation.pk}))
    assert (await reply(viewer))["type"] == "conversation:joined"
    seen = [await frame(other)]
    while seen[-1]["type"] != "conversation:viewing":
        seen.append(await frame(other))
    viewing = [f for f in seen + await frames_until_pong(other) if f["type"] == "conversation:viewing"]
    assert [(f["conversation_id"], f["data"]["user"]["id"], f["data"]["viewing"]) for f in viewing] == [
        (conversation.pk, member.pk, True)
    ]
    await viewer.disconnect()  # closing the tab: the others stop showing them
    seen = [await frame(other)]
    while seen[-1]["type"] != "conversation:viewing":
        seen.append(await frame(other))
    assert seen[-1]["data"] == {"user": seen[-1]["data"]["user"], "viewing": False}
    assert seen[-1]["data"]["user"]["id"] == member.pk
    await other.disconnect()


async def test_a_read_frame_marks_read_and_every_screen_is_told(clinic, member):
    message = await database_sync_to_async(lambda: receive(clinic).message)()
    ws, other_screen = await as_member(member, clinic), await as_member(member, clinic)
    await ws.send_to(
        text_data=json.dumps(
            {"type": "message:read", "conversation_id": message.conversation_id, "message_id": message.pk}
        )
    )
    for screen in (ws, other_screen):
        read = await frame(screen, durable_only=True)
        assert read["type"] == "message:read" and read["data"] == {"user_id": member.pk, "message_id": message.pk}
    marker = await database_sync_to_async(ReadMarker.objects.get)()
    assert marker.last_read_message_id == message.pk
    await ws.disconnect()
    await other_screen.disconnect()


# --- Resume -------------------------------------------------------------------------------------------


async def test_a_resume_point_on_connect_replays_what_was_missed_then_goes_live_in_seq_order(clinic, member):
    await database_sync_to_async(lambda: [receive(clinic, f"m{n}", external_id=f"w{n}") for n in range(3)])()
    ws = await as_member(member, clinic, path="/ws/?after=1")  # hello: seq 4 (conversation:new + 3 messages)
    await database_sync_to_async(receive)(clinic, "ao vivo", external_id="w9")  # live, after hello
    got = []
    while len(got) < 5:
        received = await reply(ws)
        got.append((received["type"], received["seq"]))
    assert got == [("message:new", 2), ("message:new", 3), ("message:new", 4), ("resumed", 4), ("message:new", 5)]
    await ws.send_to(text_data='{"type": "ping"}')
    assert await reply(ws) == {"type": "pong", "seq": 5}, "nothing arrives twice"
    await ws.disconnect()


async def test_without_a_resume_point_a_connection_is_live_at_once(clinic, member):
    ws = await as_member(member, clinic)
    await database_sync_to_async(receive)(clinic, "Oi")
    started = asyncio.get_running_loop().time()
    assert [(await frame(ws, durable_only=True))["seq"] for _ in range(2)] == [1, 2]
    assert asyncio.get_running_loop().time() - started < 0.9, "no wait for a resume that is not coming"
    await ws.disconnect()


async def test_a_resume_point_past_the_clinics_latest_seq_asks_for_a_resync(clinic, member):
    await database_sync_to_async(receive)(clinic, "Oi")  # seqs 1, 2
    ws = await as_member(member, clinic, path="/ws/?after=50")  # as after a database restore
    assert await reply(ws) == {"type": "resync", "seq": 2}
    await ws.disconnect()


async def test_a_late_resume_frame_for_a_seq_already_sent_live_needs_no_resync(clinic, member):
    ws = await as_member(member, clinic)
    await database_sync_to_async(receive)(clinic, "Oi")  # seqs 1, 2, after hello: sent live
    assert [(await frame(ws, durable_only=True))["seq"] for _ in range(2)] == [1, 2]
    await ws.send_to(text_data=json.dumps({"type": "resume", "after": 2}))
    assert await reply(ws) == {"type": "resumed", "seq": 0}
    await ws.disconnect()


async def test_a_resume_point_works_with_the_auth_frame_too(clinic, member, jwt_client):
    await database_sync_to_async(receive)(clinic, "antes")  # seqs 1, 2
    token = (await database_sync_to_async(jwt_client)(member)).tokens["access"]
    ws = await connect(path="/ws/?after=1")
    await ws.send_to(text_data=json.dumps({"type": "auth", "token": token}))
    assert (await frame(ws))["type"] == "hello"
    got = [await reply(ws) for _ in range(2)]
    assert [(f["type"], f["seq"]) for f in got] == [("message:new", 2), ("resumed", 2)]
    await ws.disconnect()


@pytest.mark.parametrize("after", ["abc", "-1", "1e3", "9" * 30, "%C2%B2"])
async def test_a_resume_point_that_is_not_a_seq_closes_with_4400(clinic, member, after):
    ws = await connect(
        [(b"cookie", await database_sync_to_async(session_cookie)(member, clinic))], path=f"/ws/?after={after}"
    )
    assert await closed_with(ws) == 4400


async def test_a_resume_frame_still_replays_what_came_before_hello(clinic, member):
    await database_sync_to_async(receive)(clinic, "antes", external_id="w1")  # seqs 1, 2
    ws = await as_member(member, clinic)
    await ws.send_to(text_data='{"type": "ping"}')
    assert await reply(ws) == {"type": "pong", "seq": 2}
    await database_sync_to_async(receive)(clinic, "depois", external_id="w2")  # seq 3, sent live
    assert (await frame(ws, durable_only=True))["seq"] == 3
    await ws.send_to(text_data=json.dumps({"type": "resume", "after": 0}))
    got = [await reply(ws) for _ in range(3)]
    assert [(f["type"], f["seq"]) for f in got] == [("conversation:new", 1), ("message:new", 2), ("resumed", 2)]
    await ws.send_to(text_data='{"type": "ping"}')
    assert await reply(ws) == {"type": "pong", "seq": 3}, "the live frame is not replayed again"
    await ws.disconnect()


async def test_resume_past_the_bound_asks_for_a_resync(clinic, member, monkeypatch):
    from realtime import consumer

    monkeypatch.setattr(consumer, "REPLAY_LIMIT", 2)
    await database_sync_to_async(lambda: [receive(clinic, f"m{n}", external_id=f"w{n}") for n in range(4)])()
    ws = await as_member(member, clinic)
    await ws.send_to(text_data=json.dumps({"type": "resume", "after": 0}))
    assert await reply(ws) == {"type": "resync", "seq": 5}
    await ws.disconnect()


async def test_a_gap_in_live_frames_is_filled_from_the_log(clinic, member):
    """A frame lost by the bus (or overtaken across processes) is fetched from the log, never skipped."""
    from realtime import bus, hub

    ws = await as_member(member, clinic)

    await database_sync_to_async(receive)(clinic, "primeira")
    while (await frame(ws, durable_only=True))["seq"] < 2:
        pass
    await ws.send_to(text_data='{"type": "ping"}')
    pong = await reply(ws)
    assert pong["type"] == "pong" and pong["seq"] == 2
    # Two more events are logged, but only the later one's poke reaches the socket (the other was lost by
    # the layer, or is still on its way from another process): the consumer fills seq 3 from the log.
    await database_sync_to_async(
        lambda: Event.objects.create(clinic=clinic, seq=3, type="message:status", data={"n": 3})
    )()
    await database_sync_to_async(
        lambda: Event.objects.create(clinic=clinic, seq=4, type="message:status", data={"n": 4})
    )()
    # Only seq 4 comes over the bus, from another process; seq 3 was lost on the way.
    frame4 = b'{"type":"message:status","seq":4,"conversation_id":null,"data":{"n":4},"at":"x"}'
    (await hub.current()).from_bus(bus.clinic_channel(clinic.pk), b"D another-process 4\n" + frame4)
    got = [await frame(ws, durable_only=True), await frame(ws, durable_only=True)]
    assert [f["seq"] for f in got] == [3, 4] and got[0]["data"] == {"n": 3}
    await ws.disconnect()


# --- Limits and bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sent,code",
    [
        ("not json", "invalid_json"),
        ("[1, 2]", "invalid_frame"),
        ('{"no": "type"}', "invalid_frame"),
        ('{"type": "dance"}', "unknown_type"),
        ('{"type": "resume", "after": "5"}', "invalid_frame"),
        ('{"type": "conversation:join", "conversation_id": true}', "invalid_frame"),
        ('{"type": "conversation:typing", "conversation_id": 1}', "invalid_frame"),
        ('{"type": "ping", "pad": "' + "x" * 70_000 + '"}', "frame_too_large"),
        ("[" * 30_000 + "]" * 30_000, "invalid_json"),  # nested deeper than the parser recurses
        ('{"type": "ping", "a": ' + "[" * 30_000 + "]" * 30_000 + "}", "invalid_json"),
        (b'{"type": "ping"}', "binary_frame"),
        (b"\xff\xfe\x00 not even utf-8", "binary_frame"),
    ],
)
async def test_bad_frames_get_an_error_frame_and_the_connection_lives(clinic, member, sent, code):
    ws = await as_member(member, clinic)
    if isinstance(sent, bytes):
        await ws.send_to(bytes_data=sent)
    else:
        await ws.send_to(text_data=sent)
    error = await reply(ws)
    assert error["type"] == "error" and error["code"] == code and error["detail"]
    await ws.send_to(text_data='{"type": "ping"}')
    assert (await reply(ws))["type"] == "pong"
    await ws.disconnect()


async def test_too_many_frames_get_rate_limited_then_closed_4429(settings, clinic, member):
    settings.WS_FRAMES_PER_MINUTE = 5
    ws = await as_member(member, clinic)
    for _ in range(5):
        await ws.send_to(text_data='{"type": "ping"}')
        assert (await reply(ws))["type"] == "pong"
    await ws.send_to(text_data='{"type": "ping"}')
    assert (await reply(ws))["code"] == "rate_limited"
    for _ in range(5):
        await ws.send_to(text_data='{"type": "ping"}')
    assert await closed_with(ws) == 4429


async def test_an_event_committed_while_the_socket_joins_is_not_lost(clinic, member, monkeypatch):
    """While the process subscribes to the clinic and reads where its log stands, an event commits: the
    client gets it, live or in its replay, exactly once."""
    from realtime import log

    read_latest = log.latest_seq

    def commit_then_read(clinic_id):
        monkeypatch.setattr(log, "latest_seq", read_latest)  # only the first read, the feed's own
        receive(clinic, "no meio do caminho")
        return read_latest(clinic_id)

    monkeypatch.setattr(log, "latest_seq", commit_then_read)
    ws = await connect([(b"cookie", await database_sync_to_async(session_cookie)(member, clinic))])
    hello = await frame(ws)
    await ws.send_to(text_data=json.dumps({"type": "resume", "after": 0}))
    seqs = []
    while (received := await reply(ws))["type"] != "resumed":
        seqs.append(received["seq"])
    await ws.send_to(text_data='{"type": "ping"}')
    assert await reply(ws) == {"type": "pong", "seq": 2}
    assert seqs == [1, 2] and hello["seq"] == 2
    await ws.disconnect()
