"""How frames cross server processes: Redis pub/sub where REDIS_URL is set, this process alone otherwise.

Departure from stock Channels (DESIGN §4, §10), kept in this module: the hub talks to Redis pub/sub
through redis-py rather than through channels-redis' layer. The layer hides a dropped subscription (it
re-subscribes silently, and what was published meanwhile is gone), while the hub must know of the drop to
catch up from the log; and a frame crosses as its rendered text, once per process, with no
per-connection channel or msgpack envelope. (Two smaller departures are made, and explained, where they
act: the consumer reads its client in one loop, realtime/consumer.py; a frame's bytes are built once for
every recipient under uvicorn, realtime/sender.py.)

A message is one line of header and the frame's text:
    b"D <origin> <seq>\\n<frame>"        a durable frame of the clinic
    b"E <origin> <connection>\\n<frame>" an ephemeral one, not for that connection (or "-")
    b"C <origin>\\n<json>"               a control message (access changed, channels changed)
`origin` names the sending process: a process skips its own messages, which it delivered locally.
"""

import asyncio
import logging
import os
import threading
import time
import uuid
from collections.abc import Awaitable, Callable

from django.conf import settings

from realtime import stats

logger = logging.getLogger(__name__)

PING_SECONDS = 5.0  # a silent subscription is checked this often, so a dead one is noticed
RETRY_CAP_SECONDS = 1.0  # reconnect attempts while Redis is away: at most this far apart
PUBLISH_CONNECTIONS = 32  # publishes in flight at once; more wait their turn

_origin: tuple[int, str] = (0, "")


def origin() -> str:
    """This process's name on the bus (made anew in a forked child, which must not pass for its parent)."""
    global _origin
    pid = os.getpid()
    if _origin[0] != pid:
        _origin = (pid, uuid.uuid4().hex[:12])
    return _origin[1]


def clinic_channel(clinic_id: int) -> str:
    return f"{settings.REDIS_PREFIX}:rt:clinic:{clinic_id}"


def control_channel() -> str:
    return f"{settings.REDIS_PREFIX}:rt:control"


def durable_message(seq: int, frame: str) -> bytes:
    return f"D {origin()} {seq}\n".encode() + frame.encode()


def ephemeral_message(frame: str, exclude: str | None) -> bytes:
    return f"E {origin()} {exclude or '-'}\n".encode() + frame.encode()


def control_message(body: bytes) -> bytes:
    return f"C {origin()}\n".encode() + body


OnMessage = Callable[[str, bytes], None]


def bounded_client(url: str, *, connections: int, wait: float, connect_timeout: float, timeout: float):
    """An asyncio Redis client for bursts: past `connections` commands in flight, the next waits up to
    `wait` seconds for a free connection (redis-py's default pool refuses the 101st at once, "Too many
    connections")."""
    import redis.asyncio

    pool = redis.asyncio.BlockingConnectionPool.from_url(
        url,
        max_connections=connections,
        timeout=wait,
        socket_connect_timeout=connect_timeout,
        socket_timeout=timeout,
    )
    return redis.asyncio.Redis(connection_pool=pool)


class LocalBus:
    """The embedded setup: one server process, nothing to cross. The hub's periodic look at the log
    brings in what other processes (the task worker) wrote."""

    shared = False

    async def start(self, on_message: OnMessage, on_reconnect: Callable[[], Awaitable[None]]) -> None:
        pass

    async def subscribe(self, channel: str) -> None:
        pass

    async def unsubscribe(self, channel: str) -> None:
        pass

    def publish(self, channel: str, payload: bytes) -> None:
        pass

    async def close(self) -> None:
        pass


class RedisBus:
    """Redis pub/sub: one subscribing connection a process, re-made (and the loss reported) when it drops."""

    shared = True

    def __init__(self, url: str):
        import redis.asyncio
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        self.url = url
        self.channels: set[str] = set()
        # Publishing may retry; the subscription must not, or a drop would pass unnoticed.
        # A stalled moment piles publishes up: they wait their turn rather than fail.
        self.client = bounded_client(url, connections=PUBLISH_CONNECTIONS, wait=5, connect_timeout=2, timeout=5)
        self.listener = redis.asyncio.Redis.from_url(
            url, socket_connect_timeout=2, socket_timeout=None, retry=Retry(NoBackoff(), 0)
        )
        self.pubsub = None
        self.reader: asyncio.Task | None = None
        self.connected = asyncio.Event()
        self.publishing: set[asyncio.Task] = set()

    async def start(self, on_message: OnMessage, on_reconnect: Callable[[], Awaitable[None]]) -> None:
        """Subscribe and start reading; if Redis is away, keep trying in the background (this process's
        own frames reach its sockets meanwhile, and the log brings the rest)."""
        self.on_message, self.on_reconnect = on_message, on_reconnect
        try:
            await self._connect()
        except Exception as error:
            self.reader = asyncio.get_running_loop().create_task(self._read(error))
        else:
            self.reader = asyncio.get_running_loop().create_task(self._read())

    async def _connect(self) -> None:
        pubsub = self.listener.pubsub()
        await pubsub.subscribe(control_channel(), *self.channels)
        self.pubsub = pubsub
        self.connected.set()

    async def _read(self, lost: Exception | None = None) -> None:
        if lost is not None:
            await self._reconnect(lost)
        while True:
            try:
                message = await self.pubsub.get_message(ignore_subscribe_messages=True, timeout=PING_SECONDS)
                if message is None:  # quiet for a while: make sure the connection still answers
                    await self.pubsub.ping()
                    continue
                if message["type"] == "message":
                    self.on_message(message["channel"].decode(), message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as error:
                await self._reconnect(error)

    async def _reconnect(self, error: Exception) -> None:
        self.connected.clear()
        stats.bump("bus_reconnects")
        logger.warning("realtime bus: lost Redis (%r); reconnecting, then catching up from the log", error)
        try:
            if self.pubsub is not None:
                await self.pubsub.aclose()
        except Exception:
            logger.debug("realtime bus: closing the old subscription failed", exc_info=True)
        delay = 0.05
        while True:
            await asyncio.sleep(delay)
            try:
                await self._connect()
                break
            except asyncio.CancelledError:
                raise
            except Exception:
                delay = min(RETRY_CAP_SECONDS, delay * 2)
        logger.warning("realtime bus: Redis is back; catching up from the log")
        try:
            await self.on_reconnect()
        except Exception:
            logger.exception("realtime bus: catching up after a reconnect failed")

    async def subscribe(self, channel: str) -> None:
        self.channels.add(channel)
        if self.connected.is_set():
            try:
                await self.pubsub.subscribe(channel)
            except Exception:
                logger.warning("realtime bus: could not subscribe to %s now; done on reconnect", channel)

    async def unsubscribe(self, channel: str) -> None:
        self.channels.discard(channel)
        if self.connected.is_set():
            try:
                await self.pubsub.unsubscribe(channel)
            except Exception:
                logger.debug("realtime bus: could not unsubscribe from %s", channel, exc_info=True)

    def publish(self, channel: str, payload: bytes) -> None:
        """Send without waiting (from the loop); a failure is logged: the others catch up from the log."""
        task = asyncio.get_running_loop().create_task(self._publish(channel, payload))
        self.publishing.add(task)
        task.add_done_callback(self.publishing.discard)

    async def _publish(self, channel: str, payload: bytes) -> None:
        try:
            await self.client.publish(channel, payload)
        except Exception as error:
            stats.bump("bus_publish_failures")
            logger.warning(
                "realtime bus: publish to %s failed (%r); other processes catch up from the log", channel, error
            )

    async def close(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
        for client in (self.pubsub, self.client, self.listener):
            try:
                if client is not None:
                    await client.aclose()
            except Exception:
                logger.debug("realtime bus: close failed", exc_info=True)


def make_bus():
    return RedisBus(settings.REDIS_URL) if settings.REDIS_URL else LocalBus()


_sync_client = None
_sync_lock = threading.Lock()
# After a failed publish from sync code, further ones are skipped this long (a circuit breaker, as the read
# cache has): Redis unreachable must not hold every committing thread for the connect timeout. The servers'
# look at the log brings in the events not published; control messages (an access change) are not in the
# log, so they are always tried (they are rare).
BACKOFF_SECONDS = 5.0
_down_until = 0.0


def _client():
    global _sync_client
    import redis

    with _sync_lock:
        if _sync_client is None:
            _sync_client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    return _sync_client


def ping() -> None:
    """Raises unless the bus's Redis answers (nothing to reach without one: the in-process bus is up)."""
    if settings.REDIS_URL:
        _client().ping()


def publish_from_sync(channel: str, payload: bytes) -> bool:
    """Publish from code that runs no hub (the task worker, a command, a thread): Redis only; without it
    there is nothing to reach, and the server's look at the log brings the change in. For BACKOFF_SECONDS
    after a failure no event is tried (counted as skipped); a control message always is."""
    global _down_until
    if not settings.REDIS_URL:
        return False
    if time.monotonic() < _down_until and channel != control_channel():
        stats.bump("bus_publish_skipped")
        return False
    try:
        _client().publish(channel, payload)
    except Exception as error:
        _down_until = time.monotonic() + BACKOFF_SECONDS
        stats.bump("bus_publish_failures")
        logger.warning(
            "realtime bus: publish to %s failed (%r); servers catch up from the log; not tried for %ss",
            channel,
            error,
            BACKOFF_SECONDS,
        )
        return False
    return True


def reset_sync_client() -> None:
    global _sync_client, _down_until
    with _sync_lock:
        _sync_client = None
        _down_until = 0.0
