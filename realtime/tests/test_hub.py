"""The hub alone (no server, no sockets): frames of a clinic in seq order, a late frame waited for within
the reorder window with no database read, a real gap read from the log once for all the clinic's sockets,
each frame rendered once, and nothing of one clinic handed to another's sockets."""

import asyncio

import pytest
from channels.db import database_sync_to_async

from realtime import bus, stats
from realtime.hub import Hub
from realtime.models import Event

pytestmark = pytest.mark.django_db(transaction=True)


class Screen:
    """What the hub hands frames to (a Sender's part of it): records them."""

    def __init__(self):
        self.seq = 0
        self.got: list[tuple[int, dict]] = []

    def durable(self, seq: int, message: dict) -> None:
        self.seq = seq
        self.got.append((seq, message))

    def put(self, message: dict) -> None:
        self.got.append((None, message))

    @property
    def seqs(self) -> list[int]:
        return [seq for seq, _ in self.got]


def frame(seq: int) -> str:
    return f'{{"type":"message:status","seq":{seq},"conversation_id":null,"data":{{"n":{seq}}},"at":"x"}}'


def log(clinic, *seqs: int) -> None:
    for seq in seqs:
        Event.objects.create(clinic=clinic, seq=seq, type="message:status", data={"n": seq})


@pytest.fixture
async def hub():
    """A hub on the embedded bus, not attached to this process's commits: frames reach it only as a test
    hands them over."""
    running = Hub(asyncio.get_running_loop(), bus.LocalBus())
    yield running
    await running.stop()


async def until(condition, seconds: float = 3.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_frames_that_cross_within_the_reorder_window_are_put_in_order_without_reading_the_log(
    hub, clinic, monkeypatch
):
    screens = [Screen() for _ in range(3)]
    for screen in screens:
        assert await hub.attach(clinic.pk, screen) == 0
    reads = []
    monkeypatch.setattr("realtime.log.events_after", lambda *args: reads.append(args) or [])

    hub.durable(clinic.pk, 2, frame(2))  # the later commit's frame first
    await asyncio.sleep(0.01)
    assert all(screen.got == [] for screen in screens), "held while seq 1 may still come"
    hub.durable(clinic.pk, 1, frame(1))

    assert all(screen.seqs == [1, 2] for screen in screens)
    await asyncio.sleep(hub.reorder_seconds * 2)
    assert reads == [], "nothing was missing"


async def test_a_real_gap_is_read_from_the_log_once_for_every_socket_of_the_clinic(hub, clinic, other_clinic):
    screens = [Screen() for _ in range(50)]
    for screen in screens:
        await hub.attach(clinic.pk, screen)
    elsewhere = Screen()
    await hub.attach(other_clinic.pk, elsewhere)
    await database_sync_to_async(log)(clinic, 1, 2, 3)
    fills = stats.counts["gap_fills"]

    hub.durable(clinic.pk, 3, frame(3))  # 1 and 2 were lost on the way
    await until(lambda: screens[0].seqs == [1, 2, 3])

    assert stats.counts["gap_fills"] == fills + 1, "one read for the process, not one a socket"
    assert all(screen.seqs == [1, 2, 3] for screen in screens)
    for n in range(3):  # rendered once: every socket is handed the same message
        assert len({id(screen.got[n][1]) for screen in screens}) == 1
    assert elsewhere.got == []


async def test_a_frame_delivered_already_is_not_delivered_again(hub, clinic):
    screen = Screen()
    await hub.attach(clinic.pk, screen)
    hub.durable(clinic.pk, 1, frame(1))
    hub.durable(clinic.pk, 1, frame(1))  # our own echo over the bus, or a fill that got it first
    assert screen.seqs == [1]


async def test_a_socket_attached_later_gets_only_what_follows_its_hello(hub, clinic):
    first = Screen()
    await hub.attach(clinic.pk, first)
    hub.durable(clinic.pk, 1, frame(1))
    later = Screen()
    assert await hub.attach(clinic.pk, later) == 1
    hub.durable(clinic.pk, 2, frame(2))
    assert first.seqs == [1, 2] and later.seqs == [2]
