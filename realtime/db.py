"""A small fixed pool of threads for database work from async code, each keeping its connection.

Under ASGI, sync code reached through `sync_to_async` runs either on one thread-sensitive thread (every
socket of the process queues behind it) or on a fresh thread with a fresh connection (DESIGN §10). Async
code of the hot paths (the /ws/ consumer, the hub, the WhatsApp webhook) runs its database work here
instead: `DB_THREADS` threads, each holding its own connection from the pool between calls, dropping it
only when it broke.
"""

import asyncio
import functools
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.db import connections

logger = logging.getLogger(__name__)

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
