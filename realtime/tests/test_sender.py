"""One connection's writes: in order, held while the greeting is written, never blocking the hub on a slow
client, and as bytes identical to what the WebSocket library would send."""

import asyncio

import pytest
from websockets.frames import Frame, Opcode

from realtime.sender import MAX_QUEUED, Sender, frame_bytes, text_message


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_a_frame_is_the_bytes_the_websocket_library_would_send(size):
    text = "é" * (size // 2) + "x" * (size % 2)
    expected = Frame(Opcode.TEXT, text.encode()).serialize(mask=False, extensions=[])
    message = text_message(text)
    assert frame_bytes(message) == expected
    assert frame_bytes(message) is message["frame"], "built once, for every recipient"


class Client:
    """An ASGI send whose client reads when told to (a full buffer makes a write wait)."""

    def __init__(self):
        self.got: list[str] = []
        self.reading = asyncio.Event()
        self.reading.set()

    async def send(self, message: dict) -> None:
        await self.reading.wait()
        self.got.append(message["text"])


async def test_frames_held_during_the_greeting_follow_it_in_order():
    client = Client()
    sender = Sender(client.send)
    sender.put(text_message("live 1"))
    sender.durable(5, text_message("live 2"))
    await sender.write_now(text_message("hello"))
    assert client.got == ["hello"]
    sender.release()
    await asyncio.sleep(0)
    assert client.got == ["hello", "live 1", "live 2"] and sender.seq == 5


async def test_a_slow_client_queues_its_own_frames_and_a_hopeless_one_is_dropped():
    slow, quick = Client(), Client()
    slow.reading.clear()
    dropped = []
    senders = [Sender(slow.send, on_overflow=lambda: dropped.append(True)), Sender(quick.send)]
    for sender in senders:
        sender.release()
    for n in range(3):
        for sender in senders:
            sender.put(text_message(f"f{n}"))
    assert quick.got == ["f0", "f1", "f2"], "the quick one is not held up by the slow one"
    slow.reading.set()
    await asyncio.sleep(0.01)
    assert slow.got == ["f0", "f1", "f2"], "the slow one gets everything, in order, once it reads"
    slow.reading.clear()
    for n in range(MAX_QUEUED + 2):
        senders[0].put(text_message(f"g{n}"))
    assert dropped == [True] and senders[0].gone
