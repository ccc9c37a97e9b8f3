"""The read cache (DESIGN §7): list and detail reads under versions that the commits touching them bump.

Keys are `<name>:<clinic>:<clinic version>:<scope version>:<hash of the query>`. The scope is the
clinic's list, or one conversation's detail: a status tick bumps only its conversation's detail, a new
message the list and that detail, a clinic-wide change (a bulk load) the clinic version. Old entries are
simply never read again (no key scan) and expire by TTL. If the cache cannot
be reached, reads go to the database, the failure is counted, and the cache is left alone for a few
seconds; a version bump that failed is retried when it can be reached again.
"""

import asyncio
import hashlib
import json
import logging
import threading
import time
import weakref
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass

from django.conf import settings
from django.core.cache import DEFAULT_CACHE_ALIAS, cache, caches
from django.core.cache.backends.base import BaseCache
from django.db import transaction

logger = logging.getLogger(__name__)

ENTRY_TTL = 300  # bounds what a lost version bump (a process dying while Redis is down) could leave stale
BACKOFF_SECONDS = 5.0


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    errors: int = 0
    bypassed: int = 0
    lookup_seconds: float = 0.0
    compute_seconds: float = 0.0

    def as_dict(self) -> dict:
        data = asdict(self)
        lookups = self.hits + self.misses
        data["hit_ratio"] = round(self.hits / lookups, 3) if lookups else None
        data["avg_lookup_ms"] = round(1000 * self.lookup_seconds / lookups, 3) if lookups else None
        data["avg_compute_ms"] = round(1000 * self.compute_seconds / self.misses, 3) if self.misses else None
        return data


_stats: dict[tuple[str, int], CacheStats] = defaultdict(CacheStats)  # (cache, clinic id) → figures
_lock = threading.Lock()
_down_until = 0.0
_pending_bumps: set[str] = set()
_local = threading.local()  # this thread's bumps waiting for their commit (bump_on_commit)


def enabled() -> bool:
    return settings.READ_CACHE


def stats(clinic_id: int | None = None) -> dict[str, dict]:
    """Each cache's figures in this process: one clinic's reads, or (None) every clinic's together."""
    totals: dict[str, CacheStats] = defaultdict(CacheStats)
    with _lock:
        for (name, clinic), figures in list(_stats.items()):  # a copy: readers add keys without the lock
            if clinic_id is None or clinic == clinic_id:
                total = totals[name]
                for field, value in asdict(figures).items():
                    setattr(total, field, getattr(total, field) + value)
    return {name: s.as_dict() for name, s in sorted(totals.items())}


def reset_stats() -> None:
    global _down_until
    with _lock:
        _stats.clear()
        _pending_bumps.clear()
        _down_until = 0.0


def clinic_scope(clinic_id: int) -> str:
    return f"clinic-version:{clinic_id}"


def list_scope(clinic_id: int) -> str:
    return f"list-version:{clinic_id}"


def detail_scope(conversation_id: int) -> str:
    return f"detail-version:{conversation_id}"


def reads_scope(user_id: int) -> str:
    """A user's read markers: their unread counts change with these too."""
    return f"reads-version:{user_id}"


def _mark_down(what: str) -> None:
    global _down_until
    _down_until = time.monotonic() + BACKOFF_SECONDS
    logger.warning("read cache unreachable (%s); serving from the database", what, exc_info=True)


def _reachable() -> bool:
    """False while backing off; on the way back, first re-applies the bumps that failed."""
    if time.monotonic() < _down_until:
        return False
    if _pending_bumps:
        pending = sorted(_pending_bumps)
        _pending_bumps.clear()
        if not _bump_all(pending):
            return False
    return True


# Each key: a step up when it exists, else a start from the clock (above any earlier value); in one trip.
BUMP_SCRIPT = """
for _, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 then redis.call('INCR', key) else redis.call('SET', key, ARGV[1]) end
end
"""


_bump_script = (None, None)  # (the Redis client, the script registered with it)


def _bump_all(scopes: list[str]) -> bool:
    global _bump_script
    try:
        if hasattr(cache, "client"):  # django-redis: one script for every scope
            from django_redis import get_redis_connection

            client = get_redis_connection("default")
            if _bump_script[0] is not client:
                _bump_script = (client, client.register_script(BUMP_SCRIPT))
            _bump_script[1](keys=[cache.make_key(scope) for scope in scopes], args=[time.time_ns()])
        else:
            for scope in scopes:
                try:
                    cache.incr(scope)
                except ValueError:  # no version yet (or evicted)
                    cache.set(scope, time.time_ns(), None)
    except Exception:
        _pending_bumps.update(scopes)
        _mark_down("bump")
        return False
    return True


def bump(*scopes: str) -> None:
    """Make the cached reads of these scopes stale, in one round trip; call after a commit."""
    if enabled() and scopes:
        _bump_all(sorted(set(scopes)))


_async_clients: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # event loop → [its client, script sha]


async def _nothing() -> None:
    return None


_loop_backend_for: tuple[dict | None, BaseCache | None] = (None, None)  # (the CACHES setting, its backend)


def _loop_backend() -> BaseCache:
    """The default cache's backend for the event loop's code, made once for the CACHES setting: through
    `cache`, each request's context would make a backend of its own."""
    global _loop_backend_for
    setting, backend = _loop_backend_for
    if setting is not settings.CACHES or backend is None:
        backend = caches.create_connection(DEFAULT_CACHE_ALIAS)
        _loop_backend_for = (settings.CACHES, backend)
    return backend


async def abump_sent(*scopes: str):
    """`bump()` from the event loop, in two steps: the command is sent now and its answer awaited later.

    Returns what awaits the answer. Call it after telling the screens: the bump is then in Redis before
    any screen is told (Redis runs commands in the order they arrive, and a screen's read of the list
    comes after it hears), yet the screens do not wait for the round trip.
    """
    if not enabled() or not scopes:
        return _nothing
    backend = _loop_backend()
    if not hasattr(backend, "client"):
        bump(*scopes)  # a local-memory cache: nothing to wait for
        return _nothing
    scopes = sorted(set(scopes))
    keys = [backend.make_key(scope) for scope in scopes]
    loop = asyncio.get_running_loop()
    try:
        if loop not in _async_clients:
            from realtime.bus import bounded_client

            # A burst of changes waits its turn rather than fail.
            client = bounded_client(settings.REDIS_URL, connections=20, wait=2, connect_timeout=1, timeout=1)
            _async_clients[loop] = [client, await client.script_load(BUMP_SCRIPT)]
        client, sha = _async_clients[loop]
        connection = await client.connection_pool.get_connection()
    except Exception:
        _pending_bumps.update(scopes)
        _mark_down("bump")
        return _nothing
    now = time.time_ns()
    try:
        await connection.send_command("EVALSHA", sha, len(keys), *keys, now)
    except Exception:
        await client.connection_pool.release(connection)
        _pending_bumps.update(scopes)
        _mark_down("bump")
        return _nothing

    async def answered() -> None:
        from redis.exceptions import NoScriptError

        try:
            await connection.read_response()
        except NoScriptError:  # Redis restarted and forgot the script: run it whole
            try:
                await client.eval(BUMP_SCRIPT, len(keys), *keys, now)
                _async_clients[loop][1] = await client.script_load(BUMP_SCRIPT)
            except Exception:
                _pending_bumps.update(scopes)
                _mark_down("bump")
        except Exception:
            _pending_bumps.update(scopes)
            _mark_down("bump")
        finally:
            await client.connection_pool.release(connection)

    return answered


def bump_on_commit(scopes: list[str]) -> None:
    """Bump these scopes when the current transaction commits (at once outside one). All the bumps of a
    transaction go out in one round trip, from its first commit callback, before the events it published
    are broadcast (their callbacks come later)."""
    if not enabled() or not scopes:
        return
    if not transaction.get_connection().in_atomic_block:
        bump(*scopes)
        return
    batch = _local.__dict__.setdefault("batch", set())
    batch.update(scopes)
    transaction.on_commit(_flush_batch)


def _flush_batch() -> None:
    batch = _local.__dict__.get("batch")
    if batch:
        _local.batch = set()
        bump(*batch)


def bump_clinic_version(clinic_id: int) -> None:
    """Make every cached read of the clinic stale (after a bulk load, which sends no signals)."""
    bump(clinic_scope(clinic_id))


def _versions(*scopes: str, create: bool = True) -> list[int] | None:
    """The current version of each scope, in one round trip when they all exist. A scope never seen gets
    its first version, or with `create=False` the answer is None."""
    found = cache.get_many(scopes)
    for scope in scopes:
        if found.get(scope) is None:
            if not create:
                return None
            cache.add(scope, time.time_ns(), None)
            found[scope] = cache.get(scope)
    return [found[scope] for scope in scopes]


def _key(
    name: str, clinic_id: int, query: tuple, conversation_id: int | None, reader_id: int | None, create: bool = True
) -> str | None:
    digest = hashlib.sha1(json.dumps(query, default=str).encode(), usedforsecurity=False).hexdigest()[:20]
    scopes = [
        clinic_scope(clinic_id),
        list_scope(clinic_id) if conversation_id is None else detail_scope(conversation_id),
    ]
    if reader_id is not None:
        scopes.append(reads_scope(reader_id))
    versions = _versions(*scopes, create=create)
    if versions is None:
        return None
    return f"{name}:{clinic_id}:{':'.join(map(str, versions))}:{digest}"


def peek(name: str, clinic_id: int, query: tuple, *, conversation_id: int | None = None):
    """What `cached` would answer from the cache, or None; it creates nothing, so it may be asked before
    the caller is known to see the object: an entry is stored under its clinic only once its loader has
    checked that, so a hit is proof enough."""
    if not enabled() or not _reachable():
        return None
    try:
        key = _key(name, clinic_id, query, conversation_id, None, create=False)
        value = None if key is None else cache.get(key)
    except Exception:
        _stats[name, clinic_id].errors += 1
        _mark_down("get")
        return None
    if value is not None:
        _stats[name, clinic_id].hits += 1
    return value


def cached[T](
    name: str,
    clinic_id: int,
    query: tuple,
    compute: Callable[[], T],
    *,
    conversation_id: int | None = None,
    reader_id: int | None = None,
) -> T:
    """`compute()`'s result for this query, from the cache while nothing it shows has changed: the clinic's
    list, or with `conversation_id` that conversation's detail; with `reader_id`, that user's read markers
    too (what is unread for them)."""
    if not enabled():
        return compute()
    stat = _stats[name, clinic_id]
    if not _reachable():
        stat.bypassed += 1
        return compute()
    started = time.perf_counter()
    try:
        key = _key(name, clinic_id, query, conversation_id, reader_id)
        value = cache.get(key)
    except Exception:
        stat.errors += 1
        _mark_down("get")
        return compute()
    stat.lookup_seconds += time.perf_counter() - started
    if value is not None:
        stat.hits += 1
        return value
    stat.misses += 1
    started = time.perf_counter()
    value = compute()
    stat.compute_seconds += time.perf_counter() - started
    try:
        cache.set(key, value, ENTRY_TTL)
    except Exception:
        stat.errors += 1
        _mark_down("set")
    return value
