"""Who is online in each clinic, counted over every server process (Redis), with a grace period before
"offline" so that reloading a page does not flap, and entries that expire when a process dies.

Each open connection is a member `<user>:<connection>` of the clinic's sorted set, scored by when it
expires; connections refresh their score while they live. A user is online while any member is live.
"""

import asyncio
import time
import weakref
from dataclasses import dataclass

from django.conf import settings

ENTRY_SECONDS = 60  # a connection not refreshed for this long (its process died) no longer counts
GRACE_SECONDS = 5.0  # how long a user without connections stays "online" (a page reload reconnects)
POOL_SIZE = 20  # Redis connections a process's event loop uses for presence


@dataclass(frozen=True)
class Change:
    """A user whose announced status must change: broadcast `user:status` for it."""

    user_id: int
    status: str  # "online" or "offline"


class MemoryPresence:
    """One process's presence: the embedded setup, where there is only one process."""

    def __init__(self):
        self.connections: dict[int, dict[str, float]] = {}
        self.announced: dict[int, dict[int, str]] = {}

    async def _live(self, clinic_id: int) -> dict[str, float]:
        now = time.time()
        live = {m: s for m, s in self.connections.get(clinic_id, {}).items() if s > now}
        self.connections[clinic_id] = live
        return live

    async def add(self, clinic_id: int, member: str) -> None:
        self.connections.setdefault(clinic_id, {})[member] = time.time() + ENTRY_SECONDS

    async def remove(self, clinic_id: int, member: str) -> None:
        self.connections.get(clinic_id, {}).pop(member, None)

    async def members(self, clinic_id: int) -> list[str]:
        return list(await self._live(clinic_id))

    async def clinics(self) -> list[int]:
        return [c for c in self.connections if await self._live(c)]

    async def swap_announced(self, clinic_id: int, user_id: int, status: str) -> str | None:
        previous = self.announced.setdefault(clinic_id, {}).get(user_id)
        self.announced[clinic_id][user_id] = status
        return previous

    async def announced_online(self, clinic_id: int) -> list[int]:
        return [u for u, s in self.announced.get(clinic_id, {}).items() if s == "online"]


class RedisPresence:
    """Presence shared by every process through Redis."""

    def __init__(self, url: str, prefix: str):
        import redis.asyncio

        # A bounded pool that makes callers wait: a thousand sockets connecting or leaving at once (after a
        # deploy) queue for a few connections instead of opening one each and failing at the pool's limit.
        pool = redis.asyncio.BlockingConnectionPool.from_url(
            url, max_connections=POOL_SIZE, timeout=5, socket_timeout=2, socket_connect_timeout=2
        )
        self.redis = redis.asyncio.Redis(connection_pool=pool)
        self.prefix = prefix

    def _key(self, *parts) -> str:
        return ":".join([self.prefix, "presence", *map(str, parts)])

    async def add(self, clinic_id: int, member: str) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zadd(self._key("conns", clinic_id), {member: time.time() + ENTRY_SECONDS})
            pipe.sadd(self._key("clinics"), clinic_id)
            await pipe.execute()

    async def remove(self, clinic_id: int, member: str) -> None:
        await self.redis.zrem(self._key("conns", clinic_id), member)

    async def members(self, clinic_id: int) -> list[str]:
        key = self._key("conns", clinic_id)
        await self.redis.zremrangebyscore(key, 0, time.time())
        return [m.decode() for m in await self.redis.zrange(key, 0, -1)]

    async def clinics(self) -> list[int]:
        return [int(c) for c in await self.redis.smembers(self._key("clinics"))]

    async def swap_announced(self, clinic_id: int, user_id: int, status: str) -> str | None:
        previous = await self.redis.hget(self._key("announced", clinic_id), user_id)
        await self.redis.hset(self._key("announced", clinic_id), user_id, status)
        return previous.decode() if previous else None

    async def announced_online(self, clinic_id: int) -> list[int]:
        statuses = await self.redis.hgetall(self._key("announced", clinic_id))
        return [int(u) for u, s in statuses.items() if s == b"online"]


_memory: MemoryPresence | None = None
# An asyncio Redis client belongs to the event loop it was made on: one a loop. Under uvicorn that is one
# client a process; a sync view's async_to_sync may run on a loop of its own.
_redis: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, RedisPresence]" = weakref.WeakKeyDictionary()


def store():
    """The presence store for the running event loop (Redis where REDIS_URL is set)."""
    global _memory
    if not settings.REDIS_URL:
        if _memory is None:
            _memory = MemoryPresence()
        return _memory
    loop = asyncio.get_running_loop()
    if loop not in _redis:
        _redis[loop] = RedisPresence(settings.REDIS_URL, settings.REDIS_PREFIX)
    return _redis[loop]


def reset_store() -> None:
    global _memory
    _memory = None
    _redis.clear()


def _users(members: list[str]) -> set[int]:
    return {int(m.split(":", 1)[0]) for m in members}


async def connect(clinic_id: int, user_id: int, connection: str) -> Change | None:
    """Count a new connection; returns the change to announce when the user comes online."""
    presence = store()
    await presence.add(clinic_id, f"{user_id}:{connection}")
    if await presence.swap_announced(clinic_id, user_id, "online") != "online":
        return Change(user_id, "online")
    return None


async def refresh(clinic_id: int, user_id: int, connection: str) -> None:
    await store().add(clinic_id, f"{user_id}:{connection}")


async def disconnect(clinic_id: int, user_id: int, connection: str, grace: float | None = None) -> Change | None:
    """Drop a connection; after the grace period, returns the change to announce if the user is gone."""
    presence = store()
    await presence.remove(clinic_id, f"{user_id}:{connection}")
    await asyncio.sleep(GRACE_SECONDS if grace is None else grace)
    return await _offline_if_gone(clinic_id, user_id)


async def _offline_if_gone(clinic_id: int, user_id: int) -> Change | None:
    presence = store()
    if user_id in _users(await presence.members(clinic_id)):
        return None
    if await presence.swap_announced(clinic_id, user_id, "offline") == "online":
        return Change(user_id, "offline")
    return None


async def sweep(clinic_id: int) -> list[Change]:
    """Users announced online whose connections all expired (their process died): now offline."""
    presence = store()
    live = _users(await presence.members(clinic_id))
    changes = []
    for user_id in await presence.announced_online(clinic_id):
        if user_id not in live:
            change = await _offline_if_gone(clinic_id, user_id)
            if change:
                changes.append(change)
    return changes


async def online_users(clinic_id: int) -> list[int]:
    return sorted(_users(await store().members(clinic_id)))


async def connection_counts() -> dict[int, int]:
    """Live connections per clinic, over every process."""
    presence = store()
    counts = {}
    for clinic_id in await presence.clinics():
        n = len(await presence.members(clinic_id))
        if n:
            counts[clinic_id] = n
    return counts
