"""With REDIS_URL, frames cross processes through Redis pub/sub (realtime.bus) and the cache is Redis."""

import asyncio
import json

import pytest
import redis.asyncio
from channels.db import database_sync_to_async
from django.conf import settings
from django.core.cache import cache

import realtime
from conversations.actions.inbound import receive_inbound_message
from realtime import bus

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]


async def test_a_commit_reaches_a_subscriber_in_another_process_as_the_rendered_frame(clinic):
    """What another server process's hub receives: one message per event, the frame's text behind a header."""
    client = redis.asyncio.Redis.from_url(settings.REDIS_URL)
    subscription = client.pubsub()
    await subscription.subscribe(bus.clinic_channel(clinic.pk))
    try:
        await database_sync_to_async(receive_inbound_message)(clinic=clinic, phone="5511987654321", content="Oi")
        got = []
        while len(got) < 2:
            message = await asyncio.wait_for(subscription.get_message(ignore_subscribe_messages=True, timeout=5), 6)
            if message is not None:
                got.append(message["data"])
        headers = [data.split(b"\n", 1)[0].split(b" ") for data in got]
        frames = [json.loads(data.split(b"\n", 1)[1]) for data in got]
        assert [(h[0], int(h[2])) for h in headers] == [(b"D", 1), (b"D", 2)]
        assert [(f["type"], f["seq"]) for f in frames] == [("conversation:new", 1), ("message:new", 2)]
        assert frames[1]["data"]["message"]["content"] == "Oi"
    finally:
        await subscription.aclose()
        await client.aclose()


def test_the_cache_is_redis():
    from django_redis import get_redis_connection

    cache.set("taskmed-test-key", {"ok": 1}, 30)
    assert cache.get("taskmed-test-key") == {"ok": 1}
    assert get_redis_connection("default").exists(cache.make_key("taskmed-test-key"))
    cache.delete("taskmed-test-key")


async def test_a_burst_of_publishes_waits_for_a_connection_rather_than_failing(settings):
    """A stalled moment (a busy loop, a slow Redis) piles publishes up: more at once than the pool holds
    must wait their turn, never fail with "Too many connections" (the soak saw it, with typing and
    presence frames lost between processes)."""
    from realtime import stats

    channel = f"{settings.REDIS_PREFIX}:test:burst"
    client = redis.asyncio.Redis.from_url(settings.REDIS_URL)
    subscription = client.pubsub()
    await subscription.subscribe(channel)
    publisher = bus.RedisBus(settings.REDIS_URL)
    failures = stats.counts["bus_publish_failures"]
    try:
        for n in range(400):
            publisher.publish(channel, b"%d" % n)
        await asyncio.gather(*publisher.publishing)
        got, deadline = 0, asyncio.get_running_loop().time() + 10
        while got < 400 and asyncio.get_running_loop().time() < deadline:
            got += await subscription.get_message(ignore_subscribe_messages=True, timeout=1) is not None
        assert (got, stats.counts["bus_publish_failures"] - failures) == (400, 0)
    finally:
        await subscription.aclose()
        await client.aclose()
        await publisher.close()


async def test_a_burst_of_presence_writes_waits_for_a_connection_rather_than_failing(settings):
    """As many users' presence written at once as the pool holds, and more: each waits its turn."""
    from realtime import presence
    from realtime.tests.test_consumer import forget_presence

    forget_presence(settings)  # an earlier run's users of clinic 9 would not be joining anew
    store = presence.store()
    versions = await asyncio.gather(*(store.join(9, f"{user}:burst", 1) for user in range(1, 301)))
    assert all(versions) and len(await store.members(9)) == 300


@pytest.fixture
def silent_redis():
    """A Redis that accepts connections and never answers (a stalled server, a black-holed network)."""
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held, stop = [], threading.Event()

    def accept():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0"
    stop.set()
    thread.join(5)
    for connection in held:
        connection.close()
    listener.close()


def test_redis_unreachable_holds_one_commit_for_its_timeout_not_every_commit(settings, clinic, silent_redis):
    """Each committed event is published from the committing thread: with Redis not answering, the first
    waits for the timeout, and the next ones are not tried for a few seconds (the servers read the log)."""
    import time

    from realtime import stats

    settings.REDIS_URL = silent_redis
    bus.reset_sync_client()
    skipped = stats.counts["bus_publish_skipped"]
    try:
        started = time.monotonic()
        for n in range(4):
            receive_inbound_message(clinic=clinic, phone=f"551198765432{n}", content="Oi")  # two events each
        waited = time.monotonic() - started
    finally:
        bus.reset_sync_client()
    assert waited < 4, f"{waited:.1f} s: only the first publish may wait for Redis (2 s), not all eight"
    assert stats.counts["bus_publish_skipped"] - skipped == 7
    from realtime.models import Event

    assert Event.objects.filter(clinic=clinic).count() == 8, "every event is in the log, the truth"


async def test_an_access_change_is_published_even_while_publishes_of_events_back_off(settings, clinic, member):
    """Events skipped while publishing backs off come from the log; an access change is in no log: it must
    reach the other processes (their sockets of that user are checked again) whatever happened before."""
    import time

    client = redis.asyncio.Redis.from_url(settings.REDIS_URL)
    subscription = client.pubsub()
    await subscription.subscribe(bus.control_channel(), bus.clinic_channel(clinic.pk))
    try:
        bus._down_until = time.monotonic() + bus.BACKOFF_SECONDS  # a publish failed a moment ago
        await database_sync_to_async(receive_inbound_message)(clinic=clinic, phone="5511987654321", content="Oi")
        await asyncio.to_thread(realtime.access_changed, member.pk)
        got, deadline = [], time.monotonic() + 2
        while time.monotonic() < deadline:  # whatever arrives within two seconds
            message = await subscription.get_message(ignore_subscribe_messages=True, timeout=0.2)
            if message is not None:
                got.append(message)
        assert [m["channel"].decode() for m in got] == [bus.control_channel()], "events skipped, the change sent"
        assert json.loads(got[0]["data"].split(b"\n", 1)[1]) == {"type": "access", "user_id": member.pk}
    finally:
        bus.reset_sync_client()
        await subscription.aclose()
        await client.aclose()
