"""Database work from async code: a small fixed pool of threads that keep their connections, and, for
the hottest statements on PostgreSQL, a small pool of connections used from the event loop itself.

Under ASGI, sync code reached through `sync_to_async` runs either on one thread-sensitive thread (every
socket of the process queues behind it) or on a fresh thread with a fresh connection (DESIGN §10). Async
code of the hot paths (the /ws/ consumer, the hub, the WhatsApp webhook) runs its database work here
instead: `run()` on `DB_THREADS` threads, each holding its own connection between calls and dropping it
only when it broke. The WhatsApp webhook's usual message is one statement; `execute()` runs such a
statement on the event loop (psycopg's async connections, `DB_LOOP_CONNECTIONS` of them a process), which
spares it the hand-offs to a thread and back, and the wait for the interpreter lock while the loop sends
frames: measured, a third of the webhook's latency and of its CPU (docs/benchmarks.md).
"""

import asyncio
import functools
import logging
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.db import connections

logger = logging.getLogger(__name__)
PROBE_SECONDS = 1.0  # how often an open breaker looks for the database again


class Breaker:
    """The database, as far as getting a connection goes: closed (connections are tried), or open (the
    database was found away: everything is refused at once, and a background probe looks for it every
    PROBE_SECONDS, closing the breaker when it answers).

    Opened only when a failed connection is followed by a probe that finds nothing answering: a pool that
    is merely busy, or a server at its connection limit, answers the probe and opens nothing. `reach()`
    returns whether the database answers; an error it raises is a bug, logged, and opens nothing either.
    """

    def __init__(self):
        self.open_since: float | None = None
        self.answered_at = 0.0  # when a probe last found the database answering
        self.lock = threading.Lock()

    @property
    def open(self) -> bool:
        return self.open_since is not None

    def check(self) -> None:
        """Raises at once while the database is known to be away."""
        if self.open_since is not None:
            from django.db import OperationalError

            raise OperationalError("The database cannot be reached (refused at once until it answers again).")

    def failed(self, reach) -> None:
        """A connection could not be had: open unless the database answers a probe now (one probe a second
        at most: under a burst of busy-pool timeouts, the last answer stands)."""
        if self.open_since is not None or time.monotonic() - self.answered_at < PROBE_SECONDS:
            return
        if self._answers(reach):
            return  # busy, not away
        with self.lock:
            if self.open_since is not None:
                return
            self.open_since = time.monotonic()
        logger.error("the database cannot be reached: refusing at once, probing every %ss", PROBE_SECONDS)
        threading.Thread(target=self._probe, args=(reach,), name="taskmed-db-probe", daemon=True).start()

    def _answers(self, reach) -> bool:
        try:
            answers = bool(reach())
        except Exception:
            logger.exception("the database probe itself failed; taken as answering (nothing is refused for it)")
            answers = True
        if answers:
            self.answered_at = time.monotonic()
        return answers

    def _probe(self, reach) -> None:
        while True:
            time.sleep(PROBE_SECONDS)
            if not self._answers(reach):
                continue
            with self.lock:
                away = time.monotonic() - (self.open_since or time.monotonic())
                self.open_since = None
            logger.warning("the database answers again after %.1f s; connections are tried again", away)
            return


breaker = Breaker()

_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None
_running = 0  # calls under way (tests wait for none before emptying the database)


def _pool() -> ThreadPoolExecutor:
    global _executor
    with _lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=settings.DB_THREADS, thread_name_prefix="taskmed-db")
        return _executor


def _drop_broken_connections() -> None:
    for connection in connections.all(initialized_only=True):
        if connection.connection is None:
            continue
        if connection.in_atomic_block:
            # Work that left a transaction open (a bug) must not leak it into the next call.
            logger.error("a database call left a transaction open; closing its connection")
            connection.close()
        elif connection.errors_occurred and not connection.is_usable():
            connection.close()  # PostgreSQL restarted, or the connection was cut: take a new one next time
        else:
            connection.errors_occurred = False


def _call(fn, args, kwargs):
    global _running
    with _lock:
        _running += 1
    _drop_broken_connections()
    try:
        return fn(*args, **kwargs)
    finally:
        _drop_broken_connections()
        with _lock:
            _running -= 1


def wait_idle(timeout: float = 5) -> bool:
    """Wait until no call is under way (tests, before the database is emptied); False at the timeout."""
    deadline = time.monotonic() + timeout
    while _running and time.monotonic() < deadline:
        time.sleep(0.005)  # calls are short; there is nothing to await from a thread
    return not _running


async def run(fn, /, *args, **kwargs):
    """`fn(*args, **kwargs)` on a database thread, awaited without blocking the event loop."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_pool(), functools.partial(_call, fn, args, kwargs))


def submit(fn, /, *args, **kwargs):
    """Run `fn` on a database thread from sync code without waiting; returns its concurrent Future."""
    return _pool().submit(_call, fn, args, kwargs)


def close_connections(timeout: float = 10) -> None:
    """Close the connection of every database thread and stop the threads (tests, and process exit):
    one job per thread, each waiting at a barrier until all have started, so every thread runs one."""
    global _executor
    with _lock:
        executor, _executor = _executor, None
    if executor is None:
        return
    threads = settings.DB_THREADS
    barrier = threading.Barrier(threads)

    def close_mine() -> None:
        connections.close_all()
        try:
            barrier.wait(timeout)
        except threading.BrokenBarrierError:
            pass  # fewer threads were ever started: each of those has closed its own

    jobs = [executor.submit(close_mine) for _ in range(threads)]
    for job in jobs:
        job.result(timeout + 1)
    executor.shutdown(wait=True)


# --- Statements on the event loop ---------------------------------------------------------------------

_loop_pools: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopConnections]" = weakref.WeakKeyDictionary()


def loop_statements() -> bool:
    """Whether `execute()` can serve: PostgreSQL, with loop connections allowed."""
    return settings.DB_LOOP_CONNECTIONS > 0 and _vendor(settings.DATABASES["default"]["ENGINE"]) == "postgresql"


@functools.cache
def _vendor(engine: str) -> str:
    """The vendor of a database backend, from its class: asking `connections["default"]` on the event loop
    would make a database wrapper for each request's context."""
    from django.db.utils import load_backend

    return load_backend(engine).DatabaseWrapper.vendor


async def _loop_connections() -> "LoopConnections":
    loop = asyncio.get_running_loop()
    held = _loop_pools.get(loop)
    if held is None:
        from psycopg_pool import AsyncConnectionPool

        params = connections["default"].get_connection_params()
        kwargs = {
            key: value
            for key, value in params.items()
            if key not in ("cursor_factory", "context", "prepare_threshold", "client_encoding")
        }

        async def utc(connection) -> None:
            await connection.execute("SET TIME ZONE 'UTC'")

        pool = AsyncConnectionPool(
            kwargs=kwargs | {"autocommit": True},
            min_size=settings.DB_LOOP_CONNECTIONS,  # all open from the first use: none opened under a burst
            max_size=settings.DB_LOOP_CONNECTIONS,
            timeout=settings.DB_POOL_TIMEOUT,
            configure=utc,
            open=False,
            name="taskmed-loop",
        )
        await pool.open()
        held = _loop_pools[loop] = LoopConnections(pool)
    return held


class LoopConnections:
    """One event loop's connections, held between statements and lent by psycopg_pool only when needed.

    Taking a held one is a pop from a list rather than the pool's round of locks and checks (5–6 % of the
    loop's CPU under the peer's workload, docs/benchmarks.md). A connection goes back to the pool when it
    broke or was left inside a transaction (the pool resets or replaces it), when a statement waits in the
    pool for one, and once the loop's connections close; a held one is not renewed at the pool's
    max_lifetime, as the database threads' connections are not.
    """

    def __init__(self, pool):
        self.pool = pool
        self.idle: list = []
        self.waiting = 0  # statements waiting in the pool for a connection
        self.closed = False

    async def take(self):
        if self.idle:
            return self.idle.pop()
        self.waiting += 1
        try:
            return await self.pool.getconn()
        finally:
            self.waiting -= 1

    async def give_back(self, connection) -> None:
        from psycopg.pq import TransactionStatus

        if (
            self.waiting
            or self.closed
            or connection.closed
            or connection.broken
            or connection.info.transaction_status != TransactionStatus.IDLE
        ):
            await self.pool.putconn(connection)
        else:
            self.idle.append(connection)

    async def close(self) -> None:
        self.closed = True  # a statement still running gives its connection to the pool, which closes it
        while self.idle:
            await self.pool.putconn(self.idle.pop())
        await self.pool.close()


async def execute(sql: str, params: dict, *, every_row: bool = False):
    """Run one statement in its own transaction (autocommit) on the event loop; its first row, or every
    row. It is prepared on each connection (planned once, then only its parameters travel). Refused at once
    while the database is known to be away (the breaker)."""
    breaker.check()
    held = await _loop_connections()
    connection = await held.take()
    try:
        cursor = await connection.execute(sql, params, prepare=True)
        return await (cursor.fetchall() if every_row else cursor.fetchone())
    finally:
        await held.give_back(connection)


async def close_loop_connections() -> None:
    held = _loop_pools.pop(asyncio.get_running_loop(), None)
    if held is not None:
        await held.close()
