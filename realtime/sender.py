"""One connection's outgoing frames: written in the order given, without holding up the hub.

The hub hands a frame to every local socket of the clinic in one pass. Writing to a socket that keeps up
completes without suspending (the server only waits while the client's buffer is full), so each write
runs as an eager task: no task is scheduled at all in the usual case, and a slow client only queues its
own frames. While the connection is being greeted (hello and the replay after `?after=`), live frames
are held, then follow in order.

Departure from stock ASGI (DESIGN §10), here only: under uvicorn's sans-I/O WebSocket protocol, what the
product is served with, a frame is written to the socket as bytes built once per frame for every
recipient (a server's text frame is the same bytes for everyone: it is not masked), instead of each
recipient's send building it again. Measured, that is 4 µs a recipient instead of 11 (docs/benchmarks.md).
Whenever the protocol could not take the bytes as they are (its buffer full, a close under way), and
under any other server, the ASGI send does it. Likewise, once the accept is written the protocol's copy of
the handshake is let go (`forget_handshake`): ≈ 5 KB a socket that it would keep and never read.
"""

import asyncio
import logging
from collections import deque

from realtime import stats

logger = logging.getLogger(__name__)

MAX_QUEUED = 5000  # frames a client that does not read may fall behind before it is dropped (it resumes)


def text_message(text: str) -> dict:
    """The ASGI message of a text frame; built once per frame and shared by every recipient."""
    return {"type": "websocket.send", "text": text}


def frame_bytes(message: dict) -> bytes:
    """The WebSocket frame of a text message, as a server sends it (RFC 6455 §5.2: FIN, text, unmasked);
    kept in the message, so it is built once for all recipients."""
    frame = message.get("frame")
    if frame is None:
        data = message["text"].encode()
        size = len(data)
        if size < 126:
            head = bytes((0x81, size))
        elif size < 1 << 16:
            head = bytes((0x81, 126)) + size.to_bytes(2, "big")
        else:
            head = bytes((0x81, 127)) + size.to_bytes(8, "big")
        frame = message["frame"] = head + data
    return frame


def _uvicorn_protocol(send):
    """The uvicorn sans-I/O WebSocket protocol behind `send`, or None (another server, or a test's)."""
    protocol = getattr(send, "__self__", None)
    if type(protocol).__name__ != "WebSocketsSansIOProtocol":
        return None
    if not all(hasattr(protocol, name) for name in ("transport", "writable", "close_sent", "disconnected")):
        return None
    return protocol


def forget_handshake(send) -> None:
    """Let go of the handshake's request and response, once the accept is written: uvicorn's sans-I/O
    protocol keeps both (their headers, ≈ 5 KB a socket) for the connection's life, and never reads them
    after the accept. Under any other server, nothing."""
    protocol = _uvicorn_protocol(send)
    if protocol is not None and getattr(protocol, "handshake_complete", False):
        protocol.request = protocol.response = None


class Sender:
    __slots__ = ("send", "protocol", "loop", "queue", "busy", "holding", "gone", "seq", "task", "on_overflow")

    def __init__(self, send, *, seq: int = 0, on_overflow=None):
        self.send = send  # the server's ASGI send
        self.protocol = _uvicorn_protocol(send)
        self.loop = asyncio.get_running_loop()
        self.queue: deque[dict] | None = None  # made when a frame must wait (most sockets never need one)
        self.busy = False  # a write is under way (only while the client's buffer is full)
        self.holding = True  # until the greeting is written
        self.gone = False
        self.seq = seq  # the last durable seq handed to this connection
        self.task: asyncio.Task | None = None
        self.on_overflow = on_overflow

    def durable(self, seq: int, message: dict) -> None:
        """A durable frame from the hub, which hands them over in seq order."""
        if seq <= self.seq:
            return
        self.seq = seq
        self.put(message)

    def put(self, message: dict) -> None:
        if self.gone:
            return
        if self.busy or self.holding or self.queue:
            if self.queue is None:
                self.queue = deque()
            elif len(self.queue) >= MAX_QUEUED:
                self._overflow()
                return
            self.queue.append(message)
            return
        protocol = self.protocol
        if (
            protocol is not None
            and protocol.writable.is_set()
            and not protocol.close_sent
            and not protocol.disconnected
            and not protocol.transport.is_closing()
        ):
            protocol.transport.write(frame_bytes(message))
            return
        self._write(message)

    def _write(self, message: dict) -> None:
        self.busy = True
        task = asyncio.Task(self._drain(message), loop=self.loop, eager_start=True)
        if not task.done():
            self.task = task  # keep a reference while it waits for the client

    async def _drain(self, message: dict) -> None:
        try:
            await self.send(message)
            while self.queue and not self.holding:
                await self.send(self.queue.popleft())
        except OSError:  # the client has gone (uvicorn: ClientDisconnected); the server ends the connection
            self.drop()
        except Exception:
            logger.exception("ws: writing a frame failed")
            self.drop()
        finally:
            self.busy = False
            self.task = None
            if not self.queue:
                self.queue = None  # caught up: the socket costs no queue again

    async def write_now(self, message: dict) -> None:
        """Write while holding (the greeting), ahead of the held live frames."""
        if self.gone:
            return
        try:
            await self.send(message)
        except OSError:
            self.gone = True

    def release(self) -> None:
        """The greeting is written: send what was held, and from now on write as frames come."""
        self.holding = False
        if self.queue and not self.busy and not self.gone:
            self._write(self.queue.popleft())

    def drop(self) -> None:
        """Nothing more is written: the client has gone, or is being closed."""
        self.gone = True
        self.queue = None

    def _overflow(self) -> None:
        logger.warning("ws: a client fell %s frames behind; dropping it so that it resumes", MAX_QUEUED)
        stats.bump("slow_client_closes")
        self.drop()
        if self.on_overflow is not None:
            self.on_overflow()
