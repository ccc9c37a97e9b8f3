"""Closing this process's sockets whose access ended: when a control message says a user's access changed
(a membership removed, a user deactivated, a logout), at the credential's expiry (a timer), and after the
bus was away (a message may have been lost). An idle socket costs nothing: no poll, one timer.

Where there is no bus between processes (the embedded setup), a change made by another process is not
announced; there, every WS_RECHECK_SECONDS the process re-checks each distinct login once.
"""

import asyncio
import logging
from collections.abc import Iterable
from typing import Protocol

from realtime import auth, db
from realtime.auth import Caller, Refused

logger = logging.getLogger(__name__)


class Watched(Protocol):
    caller: Caller

    def refuse(self, refused: Refused) -> None:
        """Close the socket with the refusal's code (scheduled; returns at once)."""


class Watchdog:
    def __init__(self):
        self.by_user: dict[int, set[Watched]] = {}
        self.tasks: set[asyncio.Task] = set()

    def watch(self, connection: Watched) -> None:
        self.by_user.setdefault(connection.caller.user_id, set()).add(connection)

    def unwatch(self, connection: Watched) -> None:
        connections = self.by_user.get(connection.caller.user_id)
        if connections is not None:
            connections.discard(connection)
            if not connections:
                del self.by_user[connection.caller.user_id]

    def access_changed(self, user_id: int | None) -> None:
        """Re-check the sockets of `user_id` (every socket for None); from the hub's loop."""
        auth.forget(user_id)
        users = list(self.by_user) if user_id is None else [user_id]
        connections = [c for u in users for c in self.by_user.get(u, ())]
        if connections:
            task = asyncio.get_running_loop().create_task(self.recheck(connections))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def recheck(self, connections: Iterable[Watched]) -> None:
        """One check per distinct login, whatever the number of its sockets."""
        logins: dict[tuple, list[Watched]] = {}
        for connection in connections:
            logins.setdefault(connection.caller.key, []).append(connection)
        for group in logins.values():
            try:
                refused = await db.run(auth.access().still_allowed, group[0].caller)
            except Exception:
                logger.exception("ws: an access re-check could not run; closing its sockets (1011) to be safe")
                refused = Refused(1011, "access could not be checked")
            if refused is not None:
                for connection in group:
                    connection.refuse(refused)

    def everyone(self) -> list[Watched]:
        return [c for connections in self.by_user.values() for c in connections]
