"""Presence: online across processes, a grace period so reloads do not flap, expiry when a process dies,
and no "offline" while another process still holds one of the user's connections."""

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


class Process:
    """One server process's presence, recording what it announces."""

    def __init__(self, name: str):
        self.said: list[tuple[int, presence.Change]] = []  # versions aside: `versions` keeps them
        self.versions: list[int] = []
        self.presence = presence.Presence(self.heard)
        self.presence.member_suffix = f":{name}"

    def heard(self, clinic_id: int, change: presence.Change) -> None:
        self.said.append((clinic_id, presence.Change(change.user_id, change.status)))
        self.versions.append(change.version)

    async def settled(self) -> None:
        await asyncio.gather(*self.presence.grace_tasks)


async def test_the_first_connection_announces_online_and_the_second_does_not():
    process = Process("a")
    await process.presence.connect(1, 7)
    await process.presence.connect(1, 7)
    assert process.said == [(1, presence.Change(7, "online"))]
    assert await presence.online_users(1) == [7]
    assert await presence.connection_counts() == {1: 2}


async def test_a_reload_within_the_grace_period_does_not_flap():
    process = Process("a")
    await process.presence.connect(1, 7)
    process.presence.disconnect(1, 7, grace=0.2)
    await process.presence.connect(1, 7)  # the new page, back before the grace ran out
    await process.settled()
    assert process.said == [(1, presence.Change(7, "online"))], "no offline for a reload"
    assert await presence.online_users(1) == [7]


async def test_leaving_for_good_announces_offline_once():
    process = Process("a")
    await process.presence.connect(1, 7)
    process.presence.disconnect(1, 7, grace=0.05)
    await process.settled()
    assert await presence.online_users(1) == []
    await process.presence.connect(1, 7)
    assert process.said == [(1, presence.Change(7, s)) for s in ("online", "offline", "online")]
    assert process.versions == sorted(set(process.versions)) and process.versions[0] > 0, "each newer than the last"


async def test_a_user_still_connected_on_another_process_is_not_announced_offline():
    one, two = Process("one"), Process("two")
    await one.presence.connect(1, 7)
    await two.presence.connect(1, 7)
    one.presence.disconnect(1, 7, grace=0.05)
    await one.settled()
    assert one.said + two.said == [(1, presence.Change(7, "online"))]
    assert await presence.online_users(1) == [7]
    assert await presence.connection_counts() == {1: 1}


async def test_a_dead_processs_connections_expire_and_are_swept_offline(monkeypatch):
    dead, alive = Process("dead"), Process("alive")
    await dead.presence.connect(1, 7)
    await alive.presence.connect(1, 8)
    real_time = time.time
    monkeypatch.setattr(presence.time, "time", lambda: real_time() + presence.ENTRY_SECONDS + 1)
    await alive.presence.refresh()  # the living process keeps its entries and sweeps the dead one's
    assert await presence.online_users(1) == [8]
    assert (1, presence.Change(7, "offline")) in alive.said
    await alive.presence.refresh()
    assert alive.said.count((1, presence.Change(7, "offline"))) == 1, "announced once"


async def test_clinics_are_counted_apart():
    process = Process("a")
    await process.presence.connect(1, 7)
    await process.presence.connect(2, 8)
    assert await presence.online_users(1) == [7] and await presence.online_users(2) == [8]


@pytest.mark.redis
async def test_a_burst_of_connections_costs_redis_once_per_user():
    """After a deploy every browser reconnects at once."""
    process = Process("a")
    await asyncio.gather(*(process.presence.connect(1, user % 30) for user in range(300)))
    assert sorted(change.user_id for _, change in process.said) == list(range(30))
    assert await presence.connection_counts() == {1: 300}


@pytest.mark.redis
async def test_a_user_arriving_on_one_process_as_they_leave_another_ends_online_every_time():
    """The race a check-then-set loses: process one finds no other connection of the user and is about to
    say "offline" just as process two records one and says "online". Run many times with the two
    interleaved every way the round trips allow; whatever the order, the shared record says "online" while
    the user is connected on process two, and of what was said the newest version (what a screen keeps:
    the two announcements may arrive crossed) is "online"."""
    said: list[presence.Change] = []
    one, two = Process("one"), Process("two")
    for process in (one, two):
        process.presence.announce = lambda clinic_id, change: said.append(change)
    for round_ in range(200):
        await one.presence.connect(1, 7)
        one.presence.disconnect(1, 7, grace=0)
        for _ in range(round_ % 20):  # shift the interleaving by a step of the loop each round
            await asyncio.sleep(0)
        await asyncio.gather(two.presence.connect(1, 7), one.settled())
        store = presence.store()
        recorded = await store.redis.hget(store._key("announced", 1), 7)
        assert recorded == b"online", f"round {round_}: the connected user is recorded {recorded}"
        newest = max(said, key=lambda change: change.version)
        assert newest.version > 0 and newest.status == "online", (
            f"round {round_}: a screen would show the connected user offline"
        )
        assert await presence.online_users(1) == [7]
        two.presence.disconnect(1, 7, grace=0)
        await two.settled()
        assert max(said, key=lambda change: change.version).status == "offline"
        assert await presence.online_users(1) == []


@pytest.mark.redis
async def test_versions_keep_growing_after_redis_forgets_them(settings):
    """A Redis restart loses the record; a screen still holding the last version must accept what comes."""
    import redis.asyncio

    process = Process("a")
    await process.presence.connect(1, 7)
    client = redis.asyncio.Redis.from_url(settings.REDIS_URL)
    async for key in client.scan_iter(f"{settings.REDIS_PREFIX}:presence:*"):
        await client.delete(key)  # what a restart without persistence leaves
    await client.aclose()
    process.presence.disconnect(1, 7, grace=0)
    await process.settled()
    await process.presence.connect(1, 7)  # the record is re-made and the user announced again
    assert process.versions == sorted(set(process.versions)) and len(process.versions) >= 2
