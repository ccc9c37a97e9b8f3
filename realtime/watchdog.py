"""Closing this process's sockets whose access ended: when a control message says a user's access changed
(a membership removed, a user deactivated, a logout), at the credential's end (a timer: a token's expiry
closes the socket; at a browser session's end the session is looked at again, since a page load may have
extended it), and after the bus was away (a message may have been lost). An idle socket costs nothing: no
poll, one timer.

A connection is watched from just after its greeting. A change announced while its credential was being
checked (between the check reading the access and the watch) is not missed: the watch asks whether that
user's access (or everyone's) changed since the check began (`auth.changed_since`), and if so checks
again, together with the other connections due then (one check per login).

Where there is no bus between processes (the embedded setup), a change made by another process is not
announced; there, every WS_RECHECK_SECONDS the process re-checks each distinct login once.
"""

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Protocol

from realtime import auth, db
from realtime.auth import CLOSE_NOT_AUTHENTICATED, Caller, Refused

logger = logging.getLogger(__name__)

MIN_DELAY_SECONDS = 1.0  # the least wait before looking at a browser session again
BATCH_SECONDS = 0.05  # connections due a second look are gathered this long, then checked once per login


class Watched(Protocol):
    caller: Caller

    def refuse(self, refused: Refused) -> None:
        """Close the socket with the refusal's code (scheduled; returns at once)."""


class Watchdog:
    def __init__(self):
        self.by_user: dict[int, set[Watched]] = {}
        self.timers: dict[Watched, asyncio.TimerHandle] = {}
        self.due: set[Watched] = set()  # to be checked again with the next batch
        self.due_timer: asyncio.TimerHandle | None = None
        self.tasks: set[asyncio.Task] = set()
        self.stopped = False

    def watch(self, connection: Watched, *, since: int, ends_at: float | None = None) -> None:
        """Watch `connection` from now on: `since` is `auth.changes()` when its credential's check began,
        `ends_at` when the credential ends (epoch seconds), if it does."""
        self.by_user.setdefault(connection.caller.user_id, set()).add(connection)
        if ends_at is not None:
            self._end_at(connection, ends_at)
        if auth.changed_since(connection.caller.user_id, since):  # while the credential was being checked
            self.due.add(connection)
            if self.due_timer is None and not self.stopped:
                self.due_timer = asyncio.get_running_loop().call_later(BATCH_SECONDS, self._check_due)

    def unwatch(self, connection: Watched) -> None:
        if (timer := self.timers.pop(connection, None)) is not None:
            timer.cancel()
        self.due.discard(connection)
        connections = self.by_user.get(connection.caller.user_id)
        if connections is not None:
            connections.discard(connection)
            if not connections:
                del self.by_user[connection.caller.user_id]

    def watching(self, connection: Watched) -> bool:
        return connection in self.by_user.get(connection.caller.user_id, ())

    def access_changed(self, user_id: int | None) -> None:
        """Re-check the sockets of `user_id` (every socket for None); from the hub's loop, once the control
        message's handler has forgotten what was cached of them (realtime.hub)."""
        users = list(self.by_user) if user_id is None else [user_id]
        connections = [c for u in users for c in self.by_user.get(u, ())]
        if connections:
            self._spawn(self.recheck(connections))

    async def recheck(self, connections: Iterable[Watched]) -> list[Watched]:
        """One check per distinct login, whatever the number of its sockets; returns those still allowed."""
        logins: dict[tuple, list[Watched]] = {}
        for connection in connections:
            logins.setdefault(connection.caller.key, []).append(connection)
        allowed = []
        for group in logins.values():
            try:
                refused = await db.run(auth.access().still_allowed, group[0].caller)
            except Exception:
                logger.exception("ws: an access re-check could not run; closing its sockets (1011) to be safe")
                refused = Refused(1011, "access could not be checked")
            if refused is not None:
                for connection in group:
                    connection.refuse(refused)
            else:
                allowed.extend(group)
        return allowed

    def everyone(self) -> list[Watched]:
        return [c for connections in self.by_user.values() for c in connections]

    def stop(self) -> None:
        """The process's hub stops: no timer fires and no check runs after it."""
        self.stopped = True
        for timer in [*self.timers.values(), *([self.due_timer] if self.due_timer else [])]:
            timer.cancel()
        self.timers.clear()
        self.due.clear()
        self.due_timer = None
        for task in list(self.tasks):
            task.cancel()

    def _check_due(self) -> None:
        self.due_timer = None
        due, self.due = list(self.due), set()
        if due:
            self._spawn(self.recheck(due))

    # --- The credential's end -------------------------------------------------------------------------

    def _end_at(self, connection: Watched, ends_at: float) -> None:
        if self.stopped:
            return
        delay = max(0.0, ends_at - time.time())
        self.timers[connection] = asyncio.get_running_loop().call_later(delay, self._ended, connection)

    def _ended(self, connection: Watched) -> None:
        self.timers.pop(connection, None)
        session_key = connection.caller.session_key
        if session_key is None:
            connection.refuse(Refused(CLOSE_NOT_AUTHENTICATED, "token expired"))
        else:
            self._spawn(self._session_ended(connection, session_key))

    async def _session_ended(self, connection: Watched, session_key: str) -> None:
        """A browser session's end: closed unless the session was extended, then watched to its new end."""
        if not await self.recheck([connection]):
            return
        try:
            ends_at = await db.run(auth.access().session_expires_at, session_key)
        except Exception:
            logger.exception("ws: a session's end could not be read; closing its socket (1011) to be safe")
            connection.refuse(Refused(1011, "access could not be checked"))
            return
        if ends_at is not None and self.watching(connection):
            self._end_at(connection, max(ends_at, time.time() + MIN_DELAY_SECONDS))

    def _spawn(self, work) -> None:
        if self.stopped:
            work.close()
            return
        task = asyncio.get_running_loop().create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
