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


async def test_the_handshake_is_let_go_once_accepted_and_the_socket_still_works():
    """Under uvicorn's sans-I/O protocol (what the product is served with), after the accept the request
    and the response of the handshake are dropped (≈ 5 KB a socket), and frames still go out."""
    from uvicorn.config import Config
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
    from uvicorn.server import ServerState

    from realtime.sender import forget_handshake

    seen = {}

    async def app(scope, receive, send):
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        forget_handshake(send)
        seen["protocol"] = send.__self__
        sender = Sender(send)
        sender.release()
        sender.put(text_message("after the handshake"))
        await receive()

    class Transport(asyncio.Transport):
        def __init__(self):
            super().__init__()
            self.written = b""

        def write(self, data):
            self.written += data

        def get_extra_info(self, name, default=None):
            return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 5000)}.get(name, default)

        def is_closing(self):
            return False

        def close(self):
            pass

    config = Config(app, ws="websockets-sansio", lifespan="off")
    config.load()
    protocol = WebSocketsSansIOProtocol(config, ServerState(), app_state={})
    transport = Transport()
    protocol.connection_made(transport)
    protocol.data_received(
        b"GET /ws/ HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    for _ in range(50):
        if "protocol" in seen and transport.written.endswith(frame_bytes(text_message("after the handshake"))):
            break
        await asyncio.sleep(0.01)
    assert transport.written.startswith(b"HTTP/1.1 101"), transport.written[:40]
    assert transport.written.endswith(frame_bytes(text_message("after the handshake")))
    assert seen["protocol"].request is None and seen["protocol"].response is None
    protocol.connection_lost(None)
