"""Realtime over HTTP: the long-poll fallback, presence for the first render, socket stats and health."""

import asyncio
import time
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.test import AsyncClient
from django.utils import timezone

from conversations.actions.inbound import receive_inbound_message
from conversations.models import Membership, Role
from conversations.tasks import deliver_message
from realtime import bus
from realtime.tests.test_consumer import access_token, as_member, browser_signed_in, forget_presence

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def short_waits(settings):
    settings.LONGPOLL_SECONDS = 1
    forget_presence(settings)


async def bearer(user) -> dict:
    return {"Authorization": f"Bearer {await database_sync_to_async(access_token)(user)}"}


def receive(clinic, content="Oi", **fields):
    return receive_inbound_message(clinic=clinic, phone="5511987654321", content=content, **fields)


async def test_events_after_a_seq_come_at_once_as_websocket_frames(clinic, member):
    await database_sync_to_async(receive)(clinic)
    response = await AsyncClient().get("/api/events/", {"after": 0}, headers=await bearer(member))
    body = response.json()
    assert response.status_code == 200 and body["seq"] == 2
    assert [(e["type"], e["seq"]) for e in body["events"]] == [("conversation:new", 1), ("message:new", 2)]
    assert body["events"][1]["data"]["message"]["content"] == "Oi"


async def test_with_nothing_new_it_waits_and_answers_when_an_event_is_published(settings, clinic, member):
    settings.LONGPOLL_SECONDS = 20
    headers = await bearer(member)
    started = time.monotonic()
    waiting = asyncio.create_task(AsyncClient().get("/api/events/", {"after": 0}, headers=headers))
    await asyncio.sleep(0.2)  # let the request reach its wait; then something happens
    await database_sync_to_async(receive)(clinic, "chegou")
    body = (await asyncio.wait_for(waiting, 5)).json()
    assert body["events"] and body["events"][0]["seq"] == 1
    assert time.monotonic() - started < 10, "it must answer on the event, not at the 20-second timeout"


async def waiting_long_polls() -> int:
    from realtime import hub

    current = await hub.current()
    return sum(len(feed.waiters) for feed in current.feeds.values())


async def until(condition, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not await condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("change", ["membership", "deactivate", "password", "logout"])
async def test_a_waiting_long_poll_answers_an_access_change_at_once(settings, clinic, member, change):
    from realtime.tests.test_consumer import change_password, deactivate

    settings.LONGPOLL_SECONDS = 20
    headers = await bearer(member)
    started = time.monotonic()
    waiting = asyncio.create_task(AsyncClient().get("/api/events/", {"after": 0}, headers=headers))
    await until(lambda: waiting_long_polls_is(1))
    if change == "membership":
        await database_sync_to_async(lambda: Membership.objects.filter(user=member).delete())()
    elif change == "deactivate":
        await database_sync_to_async(deactivate)(member)
    elif change == "password":
        await database_sync_to_async(change_password)(member)
    else:
        await AsyncClient().post("/api/auth/logout/", {}, headers=headers, content_type="application/json")
    await database_sync_to_async(receive)(clinic, "chegou depois")  # and an event: it must not be answered
    answer = await asyncio.wait_for(waiting, 5)
    assert answer.status_code == (403 if change == "membership" else 401), answer.content
    assert "events" not in answer.json() and time.monotonic() - started < 10


async def waiting_long_polls_is(count: int) -> bool:
    return await waiting_long_polls() == count


async def test_a_long_poll_whose_access_cannot_be_checked_is_told_to_retry_not_to_sign_out(
    settings, clinic, member, monkeypatch
):
    """The re-check after an access change fails (the database away for a moment): a 503 the page retries,
    never the 401 that would sign every waiting page out."""
    from realtime import auth

    settings.LONGPOLL_SECONDS = 20
    headers = await bearer(member)
    waiting = asyncio.create_task(AsyncClient().get("/api/events/", {"after": 0}, headers=headers))
    await until(lambda: waiting_long_polls_is(1))

    def unreachable(caller):
        raise OSError("the database is unreachable")

    monkeypatch.setattr(auth.access(), "still_allowed", unreachable)
    await asyncio.to_thread(__import__("realtime").access_changed, member.pk)
    answer = await asyncio.wait_for(waiting, 5)
    assert answer.status_code == 503 and answer.json()["code"] == "unavailable"


async def test_a_long_poll_of_a_page_of_another_clinic_than_the_sessions_is_told_to_reload(
    clinic, other_clinic, member
):
    await database_sync_to_async(Membership.objects.create)(user=member, clinic=other_clinic, role="admin")
    browser, cookie = await database_sync_to_async(browser_signed_in)(member, clinic)
    cookies = {"cookie": cookie.decode()}
    assert (
        await AsyncClient().get("/api/events/", {"after": 0, "clinic": clinic.pk}, headers=cookies)
    ).status_code == 200
    await database_sync_to_async(browser.post)("/clinics/", {"clinic_id": other_clinic.pk})
    moved = await AsyncClient().get("/api/events/", {"after": 0, "clinic": clinic.pk}, headers=cookies)
    assert moved.status_code == 409 and moved.json()["code"] == "clinic_changed"


async def test_with_nothing_new_it_answers_empty_after_the_wait(clinic, member):
    started = time.monotonic()
    body = (await AsyncClient().get("/api/events/", {"after": 0}, headers=await bearer(member))).json()
    assert body == {"events": [], "seq": 0} and time.monotonic() - started >= 0.9


async def test_another_clinics_events_are_never_returned(clinic, other_clinic, outsider):
    await database_sync_to_async(receive)(clinic, "sigilo")
    body = (await AsyncClient().get("/api/events/", {"after": 0}, headers=await bearer(outsider))).json()
    assert body == {"events": [], "seq": 0}


async def test_a_seq_from_the_future_asks_for_a_resync(clinic, member):
    body = (await AsyncClient().get("/api/events/", {"after": 99}, headers=await bearer(member))).json()
    assert body["events"] == [{"type": "resync", "seq": 0}]


@pytest.mark.parametrize("query,status", [({"after": "x"}, 400), ({}, 400), ({"after": -1}, 400)])
async def test_bad_parameters_are_400s(clinic, member, query, status):
    response = await AsyncClient().get("/api/events/", query, headers=await bearer(member))
    assert response.status_code == status and response.json()["field"] == "after"


async def test_unauthenticated_or_bad_tokens_are_401s(clinic):
    assert (await AsyncClient().get("/api/events/", {"after": 0})).status_code == 401
    response = await AsyncClient().get("/api/events/", {"after": 0}, headers={"Authorization": "Bearer junk"})
    assert response.status_code == 401 and response.json()["code"] == "token_not_valid"


async def test_the_session_works_too(clinic, member):
    client = AsyncClient()
    await client.aforce_login(member)
    session = await client.asession()
    await session.aset("active_clinic_id", clinic.pk)
    await session.asave()
    assert (await client.get("/api/events/", {"after": 0})).status_code == 200


# --- Presence, stats, health --------------------------------------------------------------------------


async def test_presence_lists_who_is_connected(clinic, member, make_member):
    idle = await database_sync_to_async(make_member)(clinic, Role.PROFESSIONAL)
    ws = await as_member(member, clinic)
    online = (await AsyncClient().get("/api/presence/", headers=await bearer(idle))).json()["online"]
    assert online == [{"id": member.pk, "name": "Júlia Carvalho"}]
    await ws.disconnect()


async def test_socket_stats_count_connections_for_admins(clinic, member, make_member, other_clinic, outsider):
    admin = await database_sync_to_async(make_member)(clinic, Role.ADMIN)
    sockets = [
        await as_member(member, clinic),
        await as_member(member, clinic),
        await as_member(outsider, other_clinic),
    ]
    body = (await AsyncClient().get("/api/socket/stats/", headers=await bearer(admin))).json()
    assert body == {"total": 2, "per_clinic": {str(clinic.pk): 2}}, "another clinic's sockets are not counted"
    assert (await AsyncClient().get("/api/socket/stats/", headers=await bearer(member))).status_code == 403
    for ws in sockets:
        await ws.disconnect()


def test_the_public_health_answer_is_liveness_only(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/api/health/")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


@pytest.fixture
def operator(django_user_model):
    return django_user_model.objects.create_user("ops", password="senha-de-teste-123", is_staff=True)


def test_the_detailed_health_is_for_operators_only(client, member, operator):
    assert client.get("/api/health/details/").status_code in (401, 403)
    client.force_login(member)  # clinic staff, not the operations team
    assert client.get("/api/health/details/").status_code == 403
    client.force_login(operator)
    body = client.get("/api/health/details/").json()
    assert body["status"] == "ok" and set(body["checks"]) == {"database", "cache", "bus", "worker"}
    assert all(check["ok"] and check["ms"] >= 0 for check in body["checks"].values())


def test_health_fails_when_the_worker_does_not_keep_up(client, operator):
    client.force_login(operator)
    deliver_message.using(run_after=timezone.now() - timedelta(minutes=5)).enqueue(1)
    response = client.get("/api/health/details/")
    assert response.status_code == 503 and response.json()["status"] == "failing"
    assert "db_worker" in response.json()["checks"]["worker"]["detail"]


def test_a_failing_check_tells_its_kind_but_not_where_the_service_is(client, operator, settings, caplog):
    client.force_login(operator)
    settings.REDIS_URL = "redis://secret-redis-host.internal:1/0"
    bus.reset_sync_client()
    try:
        response = client.get("/api/health/details/")
    finally:
        bus.reset_sync_client()
    assert response.status_code == 503
    failed = response.json()["checks"]["bus"]
    assert failed["ok"] is False and failed["error"] and "secret-redis-host" not in response.text
    assert "secret-redis-host" in caplog.text, "the whole error is in the log, for the operator"


@pytest.mark.redis
def test_health_checks_leave_no_subscription_or_key_behind(client, operator, settings):
    import redis

    server = redis.Redis.from_url(settings.REDIS_URL)
    client.force_login(operator)

    def held():
        keys = [key for key in server.scan_iter(count=1000) if b"throttle" not in key]  # counters: expected
        return len(server.pubsub_channels()), server.pubsub_numpat(), sorted(keys)

    before = held()
    for _ in range(20):
        assert client.get("/api/health/").status_code == 200
        assert client.get("/api/health/details/").status_code == 200
    assert held() == before


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_long_polls_however_they_end_leave_no_subscription_or_waiter_behind(serve, clinic, member, settings):
    """Long-polls that answer at once, that wait out their time, and that the client abandons mid-wait,
    against a real server process: the waiters are all gone after, and the process holds one subscription
    for the clinic however many polls there were (a subscription per call was a leak that never stopped)."""
    import re
    import urllib.request

    import redis

    from realtime.tests.test_scale_out import server_env

    receive_inbound_message(clinic=clinic, phone="5511987654321", content="Oi")  # seqs 1, 2
    host = serve(server_env(LONGPOLL_SECONDS="1", METRICS_TOKEN="raspador-de-teste"))
    headers = {"Authorization": f"Bearer {access_token(member)}"}
    server = redis.Redis.from_url(settings.REDIS_URL)

    def poll(after: int, timeout: float) -> None:
        request = urllib.request.Request(f"http://{host}/api/events/?after={after}", headers=headers)
        try:
            urllib.request.urlopen(request, timeout=timeout).read()
        except TimeoutError:
            pass  # the client gave up mid-wait

    def metric(name: str) -> float:
        request = urllib.request.Request(
            f"http://{host}/metrics", headers={"Authorization": "Bearer raspador-de-teste"}
        )
        text = urllib.request.urlopen(request, timeout=5).read().decode()
        return float(re.search(rf"^{name} (\S+)$", text, re.M).group(1))

    def rounds(n: int) -> None:
        for _ in range(n):
            poll(0, 5)  # answers at once: there are events after 0
            poll(2, 5)  # waits out its second
            poll(2, 0.3)  # abandoned by the client

    def settled() -> None:
        """Until the abandoned waits have ended on the server (within their LONGPOLL_SECONDS)."""
        deadline = time.monotonic() + 10
        while metric("taskmed_longpoll_waiting") != 0:
            assert time.monotonic() < deadline, "a long-poll still waits after its time ran out"
            time.sleep(0.1)

    rounds(2)
    settled()
    subscribed = len(server.pubsub_channels()), metric("taskmed_hub_clinics")
    rounds(6)
    settled()
    assert (len(server.pubsub_channels()), metric("taskmed_hub_clinics")) == subscribed
    assert subscribed[1] <= 1
