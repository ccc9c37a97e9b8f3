"""The database's circuit breaker (taskmed.postgresql, realtime.db.breaker): a pool that is only busy, or a
server at its connection limit, never opens it; only a database that does not answer does. (PostgreSQL
stopped under a running server: taskmed/tests/test_faults.py.)"""

import pytest
from django.db import OperationalError, connections

from realtime.db import breaker
from taskmed.postgresql.base import DatabaseWrapper

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def breaker_closed():
    breaker.open_since, breaker.answered_at = None, 0.0  # no earlier test's probe stands for this one's
    yield
    breaker.open_since, breaker.answered_at = None, 0.0


def wrapper(alias: str, port: int | None = None, **options) -> DatabaseWrapper:
    """A connection of this test's own to the test database, with its own pool (`alias`)."""
    settings = connections["default"].settings_dict
    pool = {"min_size": 0, "max_size": 1, "timeout": 0.5}
    options = {**settings["OPTIONS"], "pool": pool, **options}
    return DatabaseWrapper({**settings, "PORT": port or settings["PORT"], "OPTIONS": options}, alias)


def test_a_busy_pool_with_a_connect_timeout_in_the_url_never_opens_the_breaker():
    """DATABASE_URL's `?connect_timeout=` reaches the options: the probe must still connect (it once passed
    the option twice, failed every time, and kept the process refusing everything until restarted)."""
    holder, waiter = wrapper("breaker-busy", connect_timeout=5), wrapper("breaker-busy", connect_timeout=5)
    try:
        holder.ensure_connection()  # the pool's only connection, taken
        with pytest.raises(OperationalError):
            waiter.ensure_connection()  # the pool's wait ends: busy, not away
        assert not breaker.open, "PostgreSQL answered the probe: nothing may be refused for a busy pool"
        holder.close()
        waiter.ensure_connection()
        assert waiter.is_usable()
    finally:
        holder.close()
        waiter.close()
        holder.close_pool()


def test_a_database_that_does_not_answer_opens_it_and_an_answer_closes_it():
    refusing = wrapper("breaker-away", port=1)  # nothing listens there
    try:
        with pytest.raises(OperationalError):
            refusing.ensure_connection()
        assert breaker.open
        with pytest.raises(OperationalError, match="refused at once"):
            wrapper("breaker-other").ensure_connection()  # any connection, at once
        refusing.settings_dict["PORT"] = connections["default"].settings_dict["PORT"]  # it is back
        assert _until(lambda: not breaker.open), "the probe found it answering and closed the breaker"
    finally:
        refusing.close_pool()


def _until(condition, seconds: float = 10) -> bool:
    import time

    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
