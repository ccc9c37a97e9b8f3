"""Presence: online across processes, a grace period so reloads do not flap, and expiry when a process dies."""

import asyncio
import time

import pytest

from realtime import presence
from realtime.tests.test_consumer import forget_presence


@pytest.fixture(autouse=True)
def fresh(settings):
    forget_presence(settings)
    yield
    presence.reset_store()


async def test_the_first_connection_announces_online_and_the_second_does_not():
    assert await presence.connect(1, 7, "a") == presence.Change(7, "online")
    assert await presence.connect(1, 7, "b") is None
    assert await presence.online_users(1) == [7]
    assert await presence.connection_counts() == {1: 2}


async def test_a_reload_within_the_grace_period_does_not_flap():
    await presence.connect(1, 7, "old-page")
    leaving = presence.disconnect(1, 7, "old-page", grace=0.2)
    pending = asyncio.create_task(leaving)
    assert await presence.connect(1, 7, "new-page") is None  # back before the grace ran out
    assert await pending is None, "no offline for a reload"
    assert await presence.online_users(1) == [7]


async def test_leaving_for_good_announces_offline_once():
    await presence.connect(1, 7, "a")
    assert await presence.disconnect(1, 7, "a", grace=0.05) == presence.Change(7, "offline")
    assert await presence.online_users(1) == []
    assert await presence.connect(1, 7, "b") == presence.Change(7, "online")


async def test_a_dead_processs_connections_expire_and_are_swept_offline(monkeypatch):
    await presence.connect(1, 7, "on-a-process-that-died")
    real_time = time.time
    monkeypatch.setattr(presence.time, "time", lambda: real_time() + presence.ENTRY_SECONDS + 1)
    assert await presence.online_users(1) == []
    assert await presence.sweep(1) == [presence.Change(7, "offline")]
    assert await presence.sweep(1) == []


async def test_clinics_are_counted_apart():
    await presence.connect(1, 7, "a")
    await presence.connect(2, 8, "b")
    assert await presence.online_users(1) == [7] and await presence.online_users(2) == [8]


@pytest.mark.redis
async def test_a_burst_of_connections_waits_for_redis_connections_instead_of_failing():
    """After a deploy every browser reconnects at once: more connections than the presence pool holds."""
    users = range(1, 301)
    changes = await asyncio.gather(*(presence.connect(1, user, f"c{user}") for user in users))
    assert all(change == presence.Change(user, "online") for change, user in zip(changes, users, strict=True))
    assert await presence.connection_counts() == {1: 300}
