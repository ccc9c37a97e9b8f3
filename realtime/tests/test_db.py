"""The event loop's own database connections (realtime.db.execute): held between statements, never more
than DB_LOOP_CONNECTIONS, a broken one replaced, all closed with the loop's connections."""

import asyncio

import psycopg
import pytest
from asgiref.sync import sync_to_async
from django.db import connection

from realtime import db

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


async def backend_pid() -> int:
    (pid,) = await db.execute("SELECT pg_backend_pid()", {})
    return pid


async def asked_of_the_pool() -> int:
    held = await db._loop_connections()
    return held.pool.get_stats()["requests_num"]


def run_sql(sql: str, params: list) -> list:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


async def until(check, seconds: float = 10) -> None:
    """Wait (at most `seconds`) until `check()` is true."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def sleeping(pid: int) -> bool:
    rows = await sync_to_async(run_sql)(
        "SELECT 1 FROM pg_stat_activity WHERE pid = %s AND state = 'active' AND query LIKE %s", [pid, "%pg_sleep%"]
    )
    return bool(rows)


async def test_statements_one_after_another_take_the_held_connection_not_the_pool_s(settings):
    settings.DB_LOOP_CONNECTIONS = 2
    first = await backend_pid()
    asked = await asked_of_the_pool()
    assert {await backend_pid() for _ in range(6)} == {first}
    assert await asked_of_the_pool() == asked


async def test_more_statements_at_once_than_connections_all_run_on_that_many(settings):
    settings.DB_LOOP_CONNECTIONS = 2
    rows = await asyncio.wait_for(
        asyncio.gather(*(db.execute("SELECT pg_backend_pid(), pg_sleep(0.02)", {}) for _ in range(12))), 10
    )
    assert len(rows) == 12
    assert len({pid for pid, _ in rows}) == 2


async def test_a_statement_that_fails_leaves_its_connection_held_and_usable(settings):
    settings.DB_LOOP_CONNECTIONS = 2
    before = await backend_pid()
    asked = await asked_of_the_pool()
    with pytest.raises(psycopg.errors.UndefinedTable):
        await db.execute("SELECT * FROM no_such_table", {})
    assert await backend_pid() == before
    assert await asked_of_the_pool() == asked


async def test_a_connection_the_server_ended_is_replaced(settings):
    settings.DB_LOOP_CONNECTIONS = 1
    ended = await backend_pid()
    await sync_to_async(run_sql)("SELECT pg_terminate_backend(%s)", [ended])
    with pytest.raises(psycopg.OperationalError):
        await db.execute("SELECT 1", {})
    replaced = await asyncio.wait_for(backend_pid(), 10)
    assert replaced != ended
    assert await backend_pid() == replaced


async def test_a_statement_cancelled_midway_does_not_leave_its_connection_in_use(settings):
    settings.DB_LOOP_CONNECTIONS = 1
    pid = await backend_pid()
    slow = asyncio.ensure_future(db.execute("SELECT pg_sleep(5)", {}))
    await until(lambda: sleeping(pid))
    slow.cancel()
    with pytest.raises(asyncio.CancelledError):
        await slow
    assert await asyncio.wait_for(db.execute("SELECT 2", {}), 10) == (2,)


async def test_a_statement_running_when_the_connections_close_has_its_connection_closed(settings):
    settings.DB_LOOP_CONNECTIONS = 1
    pid = await backend_pid()
    held = await db._loop_connections()  # kept, so that the connection is closed by the pool, not by the collector
    slow = asyncio.ensure_future(db.execute("SELECT pg_sleep(0.3)", {}))
    await until(lambda: sleeping(pid))
    await db.close_loop_connections()
    await asyncio.wait_for(slow, 10)

    async def gone() -> bool:
        return not await sync_to_async(run_sql)("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid])

    await until(gone)
    assert held.idle == []
