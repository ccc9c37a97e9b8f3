"""Who is online in each clinic, over every server process, with a grace period before "offline" so that
reloading a page does not flap.

Each process counts its own connections per (clinic, user) and keeps one entry per (user, process) in
the clinic's shared record, refreshed now and then; the entry of a process that died expires. So a
connection costs Redis nothing unless it is a user's first or last in the process, and an idle process
refreshes a handful of entries. Deciding "online" and "offline" is one atomic step in Redis (a script),
so two processes can never announce a connected user offline between them.
"""

import asyncio
import logging
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings

from realtime import bus

logger = logging.getLogger(__name__)

ENTRY_SECONDS = 60  # an entry not refreshed for this long (its process died) no longer counts
REFRESH_SECONDS = 20
GRACE_SECONDS = 5.0  # how long a user without connections stays "online" (a page reload reconnects)


@dataclass(frozen=True)
class Change:
    """A user whose announced status changed: broadcast `user:status` for it."""

    user_id: int
    status: str  # "online" or "offline"
    # Orders the announcements of one user across processes, which may reach a screen in either order: a
    # screen keeps the highest it has seen. From the record's clock (microseconds), so it keeps growing
    # when Redis restarts and forgets the last one.
    version: int = 0


def _next_version(last: int | None) -> int:
    return max((last or 0) + 1, time.time_ns() // 1000)


def _user_of(member: str) -> int:
    return int(member.split(":", 1)[0])


class MemoryStore:
    """One process's record: the embedded setup, where there is only one process."""

    def __init__(self):
        self.entries: dict[int, dict[str, tuple[float, int]]] = {}  # clinic → member → (expires, connections)
        self.announced: dict[int, dict[int, str]] = {}
        self.versions: dict[tuple[int, int], int] = {}

    def _announce(self, clinic_id: int, user_id: int, status: str) -> int:
        self.announced.setdefault(clinic_id, {})[user_id] = status
        version = self.versions[clinic_id, user_id] = _next_version(self.versions.get((clinic_id, user_id)))
        return version

    def _live(self, clinic_id: int) -> dict[str, tuple[float, int]]:
        now = time.time()
        live = {m: v for m, v in self.entries.get(clinic_id, {}).items() if v[0] > now}
        self.entries[clinic_id] = live
        return live

    async def join(self, clinic_id: int, member: str, count: int) -> int:
        self.entries.setdefault(clinic_id, {})[member] = (time.time() + ENTRY_SECONDS, count)
        if self.announced.get(clinic_id, {}).get(_user_of(member)) == "online":
            return 0
        return self._announce(clinic_id, _user_of(member), "online")

    async def put(self, entries: dict[tuple[int, str], int]) -> None:
        for (clinic_id, member), count in entries.items():
            self.entries.setdefault(clinic_id, {})[member] = (time.time() + ENTRY_SECONDS, count)
            self.announced.setdefault(clinic_id, {}).setdefault(_user_of(member), "online")

    async def leave(self, clinic_id: int, member: str) -> None:
        self.entries.get(clinic_id, {}).pop(member, None)

    async def offline_if_gone(self, clinic_id: int, user_id: int) -> int:
        if any(_user_of(m) == user_id for m in self._live(clinic_id)):
            return 0
        if self.announced.get(clinic_id, {}).get(user_id) != "online":
            self.announced.setdefault(clinic_id, {})[user_id] = "offline"
            return 0
        return self._announce(clinic_id, user_id, "offline")

    async def sweep(self, clinic_id: int) -> list[tuple[int, int]]:
        live = {_user_of(m) for m in self._live(clinic_id)}
        gone = [u for u, s in self.announced.get(clinic_id, {}).items() if s == "online" and u not in live]
        return [(user_id, self._announce(clinic_id, user_id, "offline")) for user_id in gone]

    async def members(self, clinic_id: int) -> dict[str, int]:
        return {m: v[1] for m, v in self._live(clinic_id).items()}

    async def clinics(self) -> list[int]:
        return [c for c in self.entries if self._live(c)]


# The next version of a user's announcement (Change.version): past the last one, and never behind the
# record's clock, so it keeps growing after a Redis restart has forgotten the last one.
NEXT_VERSION = """
local function next_version(key, user)
  local now = redis.call('TIME')
  local version = math.max(tonumber(redis.call('HGET', key, user) or 0) + 1, now[1] * 1000000 + now[2])
  redis.call('HSET', key, user, version)
  return version
end
"""
# KEYS: entries, announced, clinics, versions · ARGV: member, "expires count", user, clinic → the version
# of the "online" to announce, or 0 when the user was online already
JOIN = (
    NEXT_VERSION
    + """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[4])
local previous = redis.call('HGET', KEYS[2], ARGV[3])
redis.call('HSET', KEYS[2], ARGV[3], 'online')
if previous == 'online' then return 0 end
return next_version(KEYS[4], ARGV[3])
"""
)
# Live users of a clinic, dropping expired entries. Used by the two scripts below.
LIVE = """
local function live_users(key, now)
  local users = {}
  local entries = redis.call('HGETALL', key)
  for i = 1, #entries, 2 do
    local expires = tonumber(string.match(entries[i + 1], '^(%S+)'))
    if expires <= now then
      redis.call('HDEL', key, entries[i])
    else
      users[string.match(entries[i], '^([^:]+)')] = true
    end
  end
  return users
end
"""
# KEYS: entries, announced, versions · ARGV: user, now → the version of the "offline" to announce, or 0
OFFLINE_IF_GONE = (
    LIVE
    + NEXT_VERSION
    + """
if live_users(KEYS[1], tonumber(ARGV[2]))[ARGV[1]] then return 0 end
local previous = redis.call('HGET', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], 'offline')
if previous == 'online' then return next_version(KEYS[3], ARGV[1]) end
return 0
"""
)
# KEYS: entries, announced, versions · ARGV: now → user, version, … of those announced online with no live
# entry, now offline
SWEEP = (
    LIVE
    + NEXT_VERSION
    + """
local live = live_users(KEYS[1], tonumber(ARGV[1]))
local gone = {}
local announced = redis.call('HGETALL', KEYS[2])
for i = 1, #announced, 2 do
  if announced[i + 1] == 'online' and not live[announced[i]] then
    redis.call('HSET', KEYS[2], announced[i], 'offline')
    table.insert(gone, announced[i])
    table.insert(gone, next_version(KEYS[3], announced[i]))
  end
end
return gone
"""
)


class RedisStore:
    """The record shared by every process, in Redis."""

    def __init__(self, url: str, prefix: str):
        # Every browser reconnecting after a deploy: the writes wait their turn rather than fail.
        self.redis = bus.bounded_client(url, connections=20, wait=5, connect_timeout=2, timeout=2)
        self.prefix = prefix
        self.join_script = self.redis.register_script(JOIN)
        self.offline_script = self.redis.register_script(OFFLINE_IF_GONE)
        self.sweep_script = self.redis.register_script(SWEEP)

    def _key(self, *parts) -> str:
        return ":".join([self.prefix, "presence", *map(str, parts)])

    def _keys(self, clinic_id: int) -> list[str]:
        return [self._key("entries", clinic_id), self._key("announced", clinic_id)]

    async def join(self, clinic_id: int, member: str, count: int) -> int:
        return int(
            await self.join_script(
                keys=[*self._keys(clinic_id), self._key("clinics"), self._key("versions", clinic_id)],
                args=[member, f"{time.time() + ENTRY_SECONDS} {count}", _user_of(member), clinic_id],
            )
        )

    async def put(self, entries: dict[tuple[int, str], int]) -> None:
        if not entries:
            return
        expires = time.time() + ENTRY_SECONDS
        async with self.redis.pipeline(transaction=False) as pipe:
            for (clinic_id, member), count in entries.items():
                pipe.hset(self._key("entries", clinic_id), member, f"{expires} {count}")
                pipe.sadd(self._key("clinics"), clinic_id)
                # Redis restarted and lost the record: the user is online (and shown so) all the same.
                pipe.hsetnx(self._key("announced", clinic_id), _user_of(member), "online")
            await pipe.execute()

    async def leave(self, clinic_id: int, member: str) -> None:
        await self.redis.hdel(self._key("entries", clinic_id), member)

    async def offline_if_gone(self, clinic_id: int, user_id: int) -> int:
        keys = [*self._keys(clinic_id), self._key("versions", clinic_id)]
        return int(await self.offline_script(keys=keys, args=[user_id, time.time()]))

    async def sweep(self, clinic_id: int) -> list[tuple[int, int]]:
        keys = [*self._keys(clinic_id), self._key("versions", clinic_id)]
        flat = await self.sweep_script(keys=keys, args=[time.time()])
        return [(int(flat[i]), int(flat[i + 1])) for i in range(0, len(flat), 2)]

    async def members(self, clinic_id: int) -> dict[str, int]:
        now, live = time.time(), {}
        for member, value in (await self.redis.hgetall(self._key("entries", clinic_id))).items():
            expires, count = value.decode().split()
            if float(expires) > now:
                live[member.decode()] = int(count)
        return live

    async def clinics(self) -> list[int]:
        return [int(c) for c in await self.redis.smembers(self._key("clinics"))]


_memory: MemoryStore | None = None
# An asyncio Redis client belongs to the event loop it was made on: one a loop.
_redis: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, RedisStore]" = weakref.WeakKeyDictionary()


def store():
    """The shared record for the running event loop (Redis where REDIS_URL is set)."""
    global _memory
    if not settings.REDIS_URL:
        if _memory is None:
            _memory = MemoryStore()
        return _memory
    loop = asyncio.get_running_loop()
    if loop not in _redis:
        _redis[loop] = RedisStore(settings.REDIS_URL, settings.REDIS_PREFIX)
    return _redis[loop]


def reset_store() -> None:
    global _memory
    _memory = None
    _redis.clear()


class Presence:
    """This process's connections per (clinic, user), kept in the shared record; owned by the hub, which
    calls `refresh()` now and then. `announce(clinic_id, change)` broadcasts a status change.

    The record's writes for one (clinic, user) are made one at a time, deciding on this process's count
    when each runs: a reload's connect and the old page's leave cannot overtake each other."""

    def __init__(self, announce: Callable[[int, Change], None]):
        self.announce = announce
        self.counts: dict[tuple[int, int], int] = {}
        self.joined: set[tuple[int, int]] = set()  # whose entry this process holds in the record
        self.locks: dict[tuple[int, int], asyncio.Lock] = {}
        self.member_suffix = ":" + bus.origin()
        self.grace_tasks: set[asyncio.Task] = set()

    def _member(self, user_id: int) -> str:
        return f"{user_id}{self.member_suffix}"

    def _lock(self, key: tuple[int, int]) -> asyncio.Lock:
        lock = self.locks.get(key)
        if lock is None:
            lock = self.locks[key] = asyncio.Lock()
        return lock

    async def connect(self, clinic_id: int, user_id: int) -> None:
        key = (clinic_id, user_id)
        self.counts[key] = self.counts.get(key, 0) + 1
        async with self._lock(key):
            await self._write(key)

    async def _write(self, key: tuple[int, int]) -> None:
        """Bring the record in line with this process's count for `key`. Call with the key's lock held."""
        clinic_id, user_id = key
        count = self.counts.get(key, 0)
        if count and key not in self.joined:
            self.joined.add(key)
            if version := await store().join(clinic_id, self._member(user_id), count):
                self.announce(clinic_id, Change(user_id, "online", version))
        elif count:
            await store().put({(clinic_id, self._member(user_id)): count})
        elif key in self.joined:
            self.joined.discard(key)
            await store().leave(clinic_id, self._member(user_id))

    def disconnect(self, clinic_id: int, user_id: int, grace: float | None = None) -> None:
        """Count a connection gone; the user's last one here starts the grace period (detached: the
        connection is already gone)."""
        key = (clinic_id, user_id)
        count = self.counts.get(key, 0) - 1
        if count > 0:
            self.counts[key] = count
        else:
            self.counts.pop(key, None)
        self._spawn(self._leave(key, GRACE_SECONDS if grace is None else grace))

    async def _leave(self, key: tuple[int, int], grace: float) -> None:
        async with self._lock(key):
            await self._write(key)
        if key in self.counts:
            return
        await asyncio.sleep(grace)
        async with self._lock(key):
            if key in self.counts:
                return  # back on this process (a reload)
            self.locks.pop(key, None)
            if version := await store().offline_if_gone(*key):
                self.announce(key[0], Change(key[1], "offline", version))

    def _spawn(self, work) -> None:
        task = asyncio.get_running_loop().create_task(self._quietly(work))
        self.grace_tasks.add(task)
        task.add_done_callback(self.grace_tasks.discard)

    async def _quietly(self, work) -> None:
        try:
            await work
        except Exception:
            logger.warning("presence: the shared record is unavailable", exc_info=True)

    async def refresh(self) -> None:
        """Keep this process's entries alive (re-made if the record was lost), and announce offline
        whoever's process died."""
        self.joined &= set(self.counts)
        await store().put({(c, self._member(u)): n for (c, u), n in self.counts.items()})
        self.joined |= set(self.counts)
        for clinic_id in {c for c, _ in self.counts}:
            for user_id, version in await store().sweep(clinic_id):
                self.announce(clinic_id, Change(user_id, "offline", version))


async def online_users(clinic_id: int) -> list[int]:
    return sorted({_user_of(m) for m in await store().members(clinic_id)})


async def connection_counts() -> dict[int, int]:
    """Open connections per clinic, over every process."""
    counts = {}
    for clinic_id in await store().clinics():
        n = sum((await store().members(clinic_id)).values())
        if n:
            counts[clinic_id] = n
    return counts
