"""Each test that opens sockets gets a hub on its own event loop; it is stopped, and its database calls
finished, before that loop closes and before the test's database is emptied."""

import asyncio

import pytest

from realtime import db, hub, presence


@pytest.fixture(autouse=True)
async def stopped_hub(request):
    if "transactional_db" in request.fixturenames or request.node.get_closest_marker("django_db"):
        request.getfixturevalue("transactional_db" if _transactional(request) else "db")
    yield
    await hub.stop()
    await asyncio.to_thread(db.wait_idle)
    presence.reset_store()


def _transactional(request) -> bool:
    marker = request.node.get_closest_marker("django_db")
    return "transactional_db" in request.fixturenames or bool(marker and marker.kwargs.get("transaction"))
