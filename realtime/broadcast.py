"""Sending after commit: to this process's hub first (its sockets get the frame at once), and over the bus
to every other process; and control messages, with the handlers that act on them in each process.
Called from any thread; a failed send is logged, never raised (the log is the truth)."""

import asyncio
import logging
import threading
from collections import defaultdict
from collections.abc import Callable

import orjson

from realtime import bus

logger = logging.getLogger(__name__)


class _Local:
    """The hub running in this process, if any, and its event loop's thread (set by the hub)."""

    hub = None
    loop: asyncio.AbstractEventLoop | None = None
    thread: int | None = None


local = _Local()
# type of control message → what each process does on it (registered at start-up, by any app)
_handlers: dict[str, list[Callable[[dict], None]]] = defaultdict(list)


def attach(hub, loop: asyncio.AbstractEventLoop) -> None:
    local.hub, local.loop, local.thread = hub, loop, threading.get_ident()


def detach(hub) -> None:
    if local.hub is hub:
        local.hub = local.loop = local.thread = None


def running_hub():
    """The hub of this process while its loop runs, else None."""
    hub, loop = local.hub, local.loop
    if hub is None or loop is None or loop.is_closed():
        return None
    return hub


def on_hub_thread() -> bool:
    return running_hub() is not None and threading.get_ident() == local.thread


def _call_on_hub(method: str, *args) -> bool:
    """The hub's `method(*args)`, on its loop; False when no hub runs here."""
    hub = running_hub()
    if hub is None:
        return False
    if threading.get_ident() == local.thread:
        getattr(hub, method)(*args)
        return True
    try:
        local.loop.call_soon_threadsafe(getattr(hub, method), *args)
    except RuntimeError:  # the loop closed meanwhile
        return False
    return True


def durable(clinic_id: int, seq: int, frame: str) -> None:
    """A committed event's frame: to this process's sockets first, then to the other processes. From a
    thread (a commit on a database thread, the task worker) the publish happens on that thread, so the
    event loop only delivers."""
    if on_hub_thread():
        local.hub.local_durable(clinic_id, seq, frame)
        return
    _call_on_hub("durable", clinic_id, seq, frame)
    bus.publish_from_sync(bus.clinic_channel(clinic_id), bus.durable_message(seq, frame))


def on_control(type: str, handler: Callable[[dict], None]) -> None:
    """Run `handler(message)` in every process for each control message of `type`. It may run on any
    thread: a handler that touches the event loop's objects hands itself to the loop."""
    if handler not in _handlers[type]:
        _handlers[type].append(handler)


def handle_control(message: dict) -> None:
    for handler in list(_handlers.get(message.get("type"), ())):
        try:
            handler(message)
        except Exception:
            logger.exception("realtime: a %s control handler failed", message.get("type"))


def control(message: dict) -> None:
    """A control message (access changed, channels changed): acted on here at once, and in every other
    process over the bus. Send it after the commit that it is about."""
    handle_control(message)
    payload = bus.control_message(orjson.dumps(message))
    if on_hub_thread():
        local.hub.bus.publish(bus.control_channel(), payload)
    else:
        bus.publish_from_sync(bus.control_channel(), payload)
