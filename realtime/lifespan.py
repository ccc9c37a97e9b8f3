"""The server process's start and end (ASGI lifespan): the hub starts with the process, so that it hears
control messages (a user's access changed, a channel changed) before any socket connects, and stops with it."""

import logging

from realtime import db, hub

logger = logging.getLogger(__name__)


async def lifespan(scope, receive, send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            try:
                await hub.current()
            except Exception:
                logger.exception("realtime: the hub could not start; it starts with the first socket instead")
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await hub.stop()
            await db.close_loop_connections()
            await send({"type": "lifespan.shutdown.complete"})
            return
