"""The per-process fan-out hub (DESIGN §4, §10): one subscription per clinic, frames in seq order, a gap
filled from the log once for the whole process, and each frame handed, rendered once, to the local
sockets of its clinic.

Durable frames reach the hub from this process's commits at once (`local_durable`) and from other
processes over the bus. Per clinic the hub keeps the last seq it delivered; a frame ahead of a missing one
waits up to REALTIME_REORDER_MS (frames of concurrent commits cross by microseconds), then the missing
ones are read from the log. Every REALTIME_LOG_CHECK_SECONDS it also compares each clinic's latest seq with
what it delivered, which brings in frames the bus lost (or, with no bus, what the task worker wrote);
when the bus reconnects after Redis was away it catches up at once. A connection therefore does no
database work per event, and an idle one none at all.
"""

import asyncio
import logging
import time

import orjson
from django.conf import settings

from realtime import auth, broadcast, bus, db, log, presence, stats
from realtime.sender import Sender, text_message
from realtime.watchdog import Watchdog

logger = logging.getLogger(__name__)

FILL_BATCH = 1000  # events read from the log at a time when filling a gap
RESYNC_AFTER = 5000  # more missed than this: the clinic's screens reload their lists instead ("resync")
LINGER_SECONDS = 30.0  # a clinic's subscription outlives its last socket this long (a reload comes back)


class Feed:
    """One clinic in this process: its sockets, long-polls waiting, and where its stream stands."""

    __slots__ = (
        "clinic_id",
        "listeners",
        "waiters",
        "last_seq",
        "pending",
        "gap_timer",
        "filling",
        "ready",
        "idle_since",
    )

    def __init__(self, clinic_id: int, ready: asyncio.Future):
        self.clinic_id = clinic_id
        self.listeners: set[Sender] = set()
        self.waiters: set[asyncio.Future] = set()
        self.last_seq: int | None = None  # None until subscribed and the log's latest read
        self.pending: dict[int, str] = {}  # seq → frame that came ahead of a missing one
        self.gap_timer: asyncio.TimerHandle | None = None
        self.filling = False
        self.ready = ready
        self.idle_since: float | None = None


class Hub:
    def __init__(self, loop: asyncio.AbstractEventLoop, transport):
        self.loop = loop
        self.bus = transport
        self.feeds: dict[int, Feed] = {}
        self.watchdog = Watchdog()
        self.presence = presence.Presence(self.announce)
        self.reorder_seconds = settings.REALTIME_REORDER_MS / 1000
        self.tasks: set[asyncio.Task] = set()
        self.stopped = False

    # --- Life ---------------------------------------------------------------------------------------

    async def start(self) -> None:
        await self.bus.start(self.from_bus, self.reconnected)
        broadcast.attach(self, self.loop)
        self.spawn(self._every(settings.REALTIME_LOG_CHECK_SECONDS, self.check_log))
        self.spawn(self._every(presence.REFRESH_SECONDS, self.presence.refresh))
        if not self.bus.shared:
            self.spawn(self._every(settings.WS_RECHECK_SECONDS, self._recheck_everyone))

    async def stop(self) -> None:
        self.stopped = True
        broadcast.detach(self)
        self.watchdog.stop()
        for task in list(self.tasks) + list(self.presence.grace_tasks):
            task.cancel()
        await self.bus.close()

    def spawn(self, work) -> asyncio.Task:
        task = self.loop.create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def _every(self, seconds: float, work) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await work()
            except Exception:
                logger.warning("realtime hub: %s failed; trying again in %s s", work.__name__, seconds, exc_info=True)

    # --- Sockets --------------------------------------------------------------------------------------

    async def attach(self, clinic_id: int, sender: Sender) -> int:
        """Add a socket to its clinic's feed; returns the seq it is live after (for `hello`): it gets
        every durable frame after that one, in order, and none before."""
        feed = self.feeds.get(clinic_id)
        if feed is None:
            feed = await self._open(clinic_id)
        elif not feed.ready.done():
            await asyncio.shield(feed.ready)
        feed.listeners.add(sender)
        feed.idle_since = None
        sender.seq = feed.last_seq
        return feed.last_seq

    def detach(self, clinic_id: int, sender: Sender) -> None:
        feed = self.feeds.get(clinic_id)
        if feed is not None:
            feed.listeners.discard(sender)
            self._maybe_idle(feed)

    async def wait_after(self, clinic_id: int, after: int, seconds: float) -> bool:
        """For the long-poll: True as soon as the clinic has an event after `after` (False at the timeout)."""
        feed = self.feeds.get(clinic_id) or await self._open(clinic_id)
        await asyncio.shield(feed.ready)
        if feed.last_seq > after:
            return True
        waiter = self.loop.create_future()
        feed.waiters.add(waiter)
        feed.idle_since = None
        try:
            await asyncio.wait_for(waiter, seconds)
            return True
        except TimeoutError:
            return False
        finally:
            feed.waiters.discard(waiter)
            self._maybe_idle(feed)

    async def _open(self, clinic_id: int) -> Feed:
        """Subscribe to the clinic, then read where its log stands: a frame that arrives in between is
        kept and sorted out once the seq is known."""
        feed = Feed(clinic_id, self.loop.create_future())
        self.feeds[clinic_id] = feed
        try:
            await self.bus.subscribe(bus.clinic_channel(clinic_id))
            feed.last_seq = await db.run(log.latest_seq, clinic_id)
        except BaseException as error:
            self.feeds.pop(clinic_id, None)
            feed.ready.set_exception(error)
            feed.ready.exception()  # retrieved: those awaiting it get it raised
            raise
        feed.ready.set_result(None)
        self._advance(feed)
        return feed

    def _maybe_idle(self, feed: Feed) -> None:
        if not feed.listeners and not feed.waiters:
            feed.idle_since = time.monotonic()

    async def _close_idle(self) -> None:
        now = time.monotonic()
        for feed in list(self.feeds.values()):
            if feed.idle_since is not None and now - feed.idle_since > LINGER_SECONDS and feed.ready.done():
                del self.feeds[feed.clinic_id]
                if feed.gap_timer is not None:
                    feed.gap_timer.cancel()
                await self.bus.unsubscribe(bus.clinic_channel(feed.clinic_id))

    # --- Durable frames -------------------------------------------------------------------------------

    def local_durable(self, clinic_id: int, seq: int, frame: str) -> None:
        """A frame committed in this process: to the other processes, and to this one's sockets now."""
        self.bus.publish(bus.clinic_channel(clinic_id), bus.durable_message(seq, frame))
        self.durable(clinic_id, seq, frame)

    def durable(self, clinic_id: int, seq: int, frame: str) -> None:
        feed = self.feeds.get(clinic_id)
        if feed is None:
            return  # no socket of that clinic here
        if feed.last_seq is not None and seq <= feed.last_seq:
            return  # delivered already (a gap fill got it first, or it is our own echo)
        feed.pending[seq] = frame
        if feed.last_seq is not None:
            self._advance(feed)

    def _advance(self, feed: Feed) -> None:
        """Deliver what is next in order; leave a gap to the reorder window, then to one fill."""
        pending = feed.pending
        while pending:
            nxt = feed.last_seq + 1
            frame = pending.pop(nxt, None)
            if frame is None:
                break
            self._deliver(feed, nxt, frame)
        for seq in [s for s in pending if s <= feed.last_seq]:
            del pending[seq]
        if not pending:
            if feed.gap_timer is not None:
                feed.gap_timer.cancel()
                feed.gap_timer = None
        elif feed.gap_timer is None and not feed.filling:
            feed.gap_timer = self.loop.call_later(self.reorder_seconds, self._gap_due, feed)

    def _deliver(self, feed: Feed, seq: int, frame: str) -> None:
        feed.last_seq = seq
        message = text_message(frame)
        for sender in feed.listeners:
            sender.durable(seq, message)
        stats.counts["frames_durable"] += len(feed.listeners)
        if feed.waiters:
            for waiter in feed.waiters:
                if not waiter.done():
                    waiter.set_result(seq)

    def _gap_due(self, feed: Feed) -> None:
        feed.gap_timer = None
        if feed.pending and not feed.filling and self.feeds.get(feed.clinic_id) is feed:
            self.spawn(self.fill(feed))

    async def fill(self, feed: Feed, upto: int | None = None) -> None:
        """Read what is missing from the log, once for the process, and deliver it in order."""
        if feed.filling or feed.last_seq is None:
            return
        feed.filling = True
        try:
            target = upto if upto is not None else (min(feed.pending) - 1 if feed.pending else None)
            if target is not None and target - feed.last_seq > RESYNC_AFTER:
                self._resync(feed, await db.run(log.latest_seq, feed.clinic_id))
                return
            stats.bump("gap_fills")
            while target is None or feed.last_seq < target:
                events = await db.run(log.events_after, feed.clinic_id, feed.last_seq, FILL_BATCH, target)
                for event in events:
                    if event.seq == feed.last_seq + 1:
                        self._deliver(feed, event.seq, log.frame_of(event))
                        feed.pending.pop(event.seq, None)
                if len(events) < FILL_BATCH:
                    break
        except Exception:
            logger.warning(
                "realtime hub: filling clinic %s from the log failed; retrying", feed.clinic_id, exc_info=True
            )
        finally:
            feed.filling = False
        self._advance(feed)

    def _resync(self, feed: Feed, latest: int) -> None:
        """Too much was missed to replay: every screen of the clinic here reloads its lists over HTTP."""
        logger.warning(
            "realtime hub: clinic %s is %s events behind; its screens resync", feed.clinic_id, latest - feed.last_seq
        )
        stats.bump("resyncs")
        feed.last_seq = latest
        feed.pending = {s: f for s, f in feed.pending.items() if s > latest}
        message = text_message(orjson.dumps({"type": "resync", "seq": latest}).decode())
        for sender in feed.listeners:
            sender.seq = latest
            sender.put(message)

    async def check_log(self) -> None:
        """Compare each clinic's latest seq with what was delivered, and fill what the bus did not bring."""
        await self._close_idle()
        feeds = [f for f in self.feeds.values() if f.last_seq is not None]
        if not feeds:
            return
        latest = await db.run(log.latest_seqs, [f.clinic_id for f in feeds])
        for feed in feeds:
            behind = latest.get(feed.clinic_id, 0)
            if behind > feed.last_seq and not feed.filling and feed.gap_timer is None:
                await self.fill(feed, upto=behind)

    async def reconnected(self) -> None:
        """The bus was away (Redis restarted): what was published meanwhile is lost to it. Catch up from
        the log, re-check access (a control message may be lost too), and restore presence."""
        broadcast.handle_control({"type": "access", "user_id": None})
        for feed in list(self.feeds.values()):
            if feed.last_seq is not None:
                await self.fill(feed, upto=await db.run(log.latest_seq, feed.clinic_id))
        await self.presence.refresh()

    # --- Ephemeral frames and control messages --------------------------------------------------------

    def ephemeral(self, clinic_id: int, frame: str, exclude: Sender | None = None) -> None:
        """Typing, viewing, presence: to the clinic's sockets here (but `exclude`) and elsewhere."""
        self.bus.publish(bus.clinic_channel(clinic_id), bus.ephemeral_message(frame, None))
        self._ephemeral(clinic_id, frame, exclude)

    def _ephemeral(self, clinic_id: int, frame: str, exclude: Sender | None = None) -> None:
        feed = self.feeds.get(clinic_id)
        if feed is None:
            return
        message = text_message(frame)
        for sender in feed.listeners:
            if sender is not exclude:
                sender.put(message)
        stats.counts["frames_ephemeral"] += len(feed.listeners) - (exclude in feed.listeners)

    def announce(self, clinic_id: int, change: presence.Change) -> None:
        data = {"user_id": change.user_id, "status": change.status, "version": change.version}
        frame = log.render_ephemeral("user:status", data)
        self.ephemeral(clinic_id, frame)

    async def _recheck_everyone(self) -> None:
        auth.forget()
        await self.watchdog.recheck(self.watchdog.everyone())

    def from_bus(self, channel: str, data: bytes) -> None:
        """A message from another process."""
        header, _, body = data.partition(b"\n")
        parts = header.decode().split(" ")
        if len(parts) < 2 or parts[1] == bus.origin():
            return  # our own, delivered here already
        kind = parts[0]
        if kind == "C":
            broadcast.handle_control(orjson.loads(body))
            return
        clinic_id = int(channel.rsplit(":", 1)[1])
        stats.counts["bus_received"] += 1
        if kind == "D":
            self.durable(clinic_id, int(parts[2]), body.decode())
        elif kind == "E":
            self._ephemeral(clinic_id, body.decode())


def _access_changed(message: dict) -> None:
    """Control message "access": forget what was cached of that user (everyone for no user) whether or not
    a hub runs here yet, and re-check their sockets."""
    auth.forget(message.get("user_id"))
    hub = broadcast.running_hub()
    if hub is None:
        return
    if broadcast.on_hub_thread():
        hub.watchdog.access_changed(message.get("user_id"))
    else:
        hub.loop.call_soon_threadsafe(hub.watchdog.access_changed, message.get("user_id"))


broadcast.on_control("access", _access_changed)

_hub: Hub | None = None
_starting: asyncio.Future | None = None


async def current() -> Hub:
    """This process's hub, started on first use on the running loop (the server's)."""
    global _hub, _starting
    loop = asyncio.get_running_loop()
    if _hub is not None and _hub.loop is loop and not _hub.stopped:
        return _hub
    if _starting is not None and _starting.get_loop() is loop:
        return await asyncio.shield(_starting)
    _starting = loop.create_future()
    try:
        hub = Hub(loop, bus.make_bus())
        await hub.start()
    except BaseException as error:
        _starting.set_exception(error)
        _starting.exception()
        _starting = None
        raise
    _hub = hub
    _starting.set_result(hub)
    return hub


def connection_count() -> int:
    """Sockets this process serves now (0 before its hub starts)."""
    hub = _hub
    return 0 if hub is None else sum(len(feed.listeners) for feed in list(hub.feeds.values()))


def bus_connected() -> bool | None:
    """Whether this process hears the other processes now (its Redis subscription is up); None where
    there is no bus to hear (the embedded setup), or before the hub starts."""
    hub = _hub
    if hub is None or not hub.bus.shared:
        return None
    return hub.bus.connected.is_set()


def subscriptions() -> tuple[int, int]:
    """Clinics this process is subscribed to, and long-polls waiting on them now."""
    hub = _hub
    feeds = [] if hub is None else list(hub.feeds.values())
    return len(feeds), sum(len(feed.waiters) for feed in feeds)


async def stop() -> None:
    """Stop this process's hub (tests; a server process simply exits)."""
    global _hub, _starting
    hub, _hub, _starting = _hub, None, None
    if hub is not None and not hub.loop.is_closed():
        await hub.stop()
