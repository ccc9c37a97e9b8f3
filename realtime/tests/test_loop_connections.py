"""The event loop's own database connections (realtime.db.execute): held between statements, never more
than DB_LOOP_CONNECTIONS, and a broken one replaced."""

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


async def test_more_statements_at_once_than_connections_all_run_on_that_many(settings):
    settings.DB_LOOP_CONNECTIONS = 2
    rows = await asyncio.wait_for(
        asyncio.gather(*(db.execute("SELECT pg_backend_pid(), pg_sleep(0.02)", {}) for _ in range(12))), 10
    )
    assert len(rows) == 12
    assert len({pid for pid, _ in rows}) == 2
    assert len({await backend_pid() for _ in range(6)}) <= 2, "held between statements, not opened anew"


async def test_a_statement_that_fails_leaves_its_connection_held_and_usable(settings):
    settings.DB_LOOP_CONNECTIONS = 1
    before = await backend_pid()
    with pytest.raises(psycopg.errors.UndefinedTable):
        await db.execute("SELECT * FROM no_such_table", {})
    assert await backend_pid() == before


async def test_a_connection_the_server_ended_is_replaced(settings):
    settings.DB_LOOP_CONNECTIONS = 1
    ended = await backend_pid()

    def terminate() -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [ended])

    await sync_to_async(terminate)()
    with pytest.raises(psycopg.OperationalError):
        await db.execute("SELECT 1", {})
    replaced = await asyncio.wait_for(backend_pid(), 10)
    assert replaced != ended
    assert await backend_pid() == replaced


async def test_a_statement_cancelled_midway_does_not_leave_its_connection_in_use(settings):
    settings.DB_LOOP_CONNECTIONS = 1
    slow = asyncio.ensure_future(db.execute("SELECT pg_sleep(5)", {}))
    await asyncio.sleep(0.2)
    slow.cancel()
    with pytest.raises(asyncio.CancelledError):
        await slow
    assert await asyncio.wait_for(db.execute("SELECT 2", {}), 10) == (2,)
