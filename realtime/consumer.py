"""The /ws/ protocol (docs/realtime.md): one user in one clinic, receiving the clinic's frames in seq order.

Authentication: the session cookie, an `Authorization: Bearer` header on the handshake, or an `auth` frame
within 5 s. The resume point comes with the connection (`/ws/?after=<seq>`): the log after it is replayed
right after `hello`, then the live frames follow, so a client misses nothing, sees nothing twice and never
sees a later seq first; without it the connection is live at once.

The consumer is the protocol only. Who the caller is comes from realtime.auth (the domain's rules, handed
down), the clinic's frames from the hub (in order, rendered once), writes go through the sender, and the
watchdog closes the socket when access ends.

Departure from stock Channels (DESIGN §10), here only: `__call__` reads the client in one loop (no
per-connection channel-layer channel, no task per received frame, no hop to the thread-sensitive thread in
`dispatch`): the server's frames come from the hub, and database work runs on realtime.db's threads.
"""

import asyncio
import logging
import re
import time
from urllib.parse import parse_qs

import orjson
from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from realtime import auth, db, frames, log, stats
from realtime.auth import Caller, Refused
from realtime.hub import Hub
from realtime.hub import current as current_hub
from realtime.ratelimit import FrameRateLimit
from realtime.sender import Sender, forget_handshake, text_message

logger = logging.getLogger(__name__)

CLOSE_BAD_REQUEST = 4400  # the connection's URL is malformed (a non-numeric ?after=)
CLOSE_TOO_SLOW = 1013  # the client fell too far behind ("try again later"): it reconnects and resumes
REPLAY_LIMIT = 1000  # beyond this many missed events a client reloads over HTTP ("resync")
TYPING_MIN_INTERVAL = 2.0


def _json(content: dict) -> str:
    return orjson.dumps(content).decode()


class ClinicConsumer(AsyncWebsocketConsumer):
    caller: Caller | None = None
    sender: Sender | None = None
    hub: Hub | None = None
    resume_after: int | None = None  # from /ws/?after=<seq>
    hello_seq = 0
    joined: set[int] | None = None
    typing_sent: dict[int, tuple[bool, float]] | None = None
    rate: FrameRateLimit | None = None
    timer: asyncio.TimerHandle | None = None  # the auth deadline (the credential's end is the watchdog's)
    closing = False
    ended = False
    counted = False  # this connection is in presence's count

    async def __call__(self, scope, receive, send):
        self.scope, self.base_send = scope, send
        try:
            while True:
                await self.dispatch(await receive())
        except StopConsumer:
            pass
        except Exception:
            logger.exception("ws: the connection failed; closing with 1011 so the client reconnects")
            await self._cleanup()
            try:
                await send({"type": "websocket.close", "code": 1011})
            except Exception:
                logger.debug("ws: the socket was already gone", exc_info=True)

    async def dispatch(self, message: dict) -> None:
        await getattr(self, get_handler_name(message))(message)

    async def websocket_disconnect(self, message: dict) -> None:
        await self._cleanup()
        raise StopConsumer()

    # --- Connecting ---------------------------------------------------------------------------------

    async def connect(self) -> None:
        # Accepted before checking, so that the client receives the close code rather than a bare 403.
        await self.accept()
        forget_handshake(self.base_send)
        query = self.scope.get("query_string", b"")
        if b"token" in query.lower():
            await self.close_now(
                Refused(auth.CLOSE_NOT_AUTHENTICATED, "tokens in the URL are refused; send a header or an auth frame")
            )
            return
        params = parse_qs(query.decode("latin-1"))
        clinic = params.get("clinic")  # a hint for the load balancer's affinity: checked for form, not trusted
        if clinic is not None and not re.fullmatch(r"[0-9]{1,18}", clinic[0]):
            await self.close_now(Refused(CLOSE_BAD_REQUEST, "clinic must be the clinic's id, a whole number"))
            return
        after = params.get("after")
        if after is not None:
            if not re.fullmatch(r"[0-9]{1,18}", after[0]):
                await self.close_now(Refused(CLOSE_BAD_REQUEST, "after must be the last seq you have, a whole number"))
                return
            self.resume_after = int(after[0])
        headers = self.scope.get("headers", [])
        # Read here and never again: the scope lives as long as the socket, its headers ≈ 1 KB of it.
        self.scope["headers"] = ()
        since = auth.changes()
        try:
            caller, ends_at = None, None
            if session_key := auth.cookie_from_headers(headers, settings.SESSION_COOKIE_NAME):
                caller = await auth.by_session(session_key)
                ends_at = caller.session_expires_at if caller else None
            if caller is None and (token := auth.bearer_from_headers(headers)):
                caller, ends_at = await auth.by_token(token)
        except Refused as refused:
            await self.close_now(refused)
            return
        if caller is None:
            self.timer = asyncio.get_running_loop().call_later(settings.WS_AUTH_TIMEOUT_SECONDS, self.auth_timed_out)
            return
        await self.start(caller, ends_at, since)

    def auth_timed_out(self) -> None:
        if self.caller is None:
            self.refuse(Refused(auth.CLOSE_AUTH_TIMEOUT, "no auth frame within 5 seconds"))

    async def start(self, caller: Caller, ends_at: float | None, since: int) -> None:
        """Join the clinic's feed, say hello with the seq it is live after, replay what the client missed
        before it (`?after=`), then let the live frames through and watch access (`since`: the count of
        access changes when the credential's check began; `ends_at`: when the credential ends)."""
        if self.timer is not None:
            self.timer.cancel()
        self.caller = caller
        self.hub = await current_hub()
        self.sender = Sender(self.base_send, on_overflow=self.overflowed)
        self.hello_seq = await self.hub.attach(caller.clinic_id, self.sender)
        await self.sender.write_now(
            text_message(_json({"type": "hello", "user": caller.user, "clinic": caller.clinic, "seq": self.hello_seq}))
        )
        if self.resume_after is not None:
            for frame in await self.replay(self.resume_after, upto=self.hello_seq):
                await self.sender.write_now(text_message(frame))
        self.sender.release()
        stats.counts["ws_connects"] += 1
        self.hub.watchdog.watch(self, since=since, ends_at=ends_at)
        self.counted = True  # counted from here on, even if the shared record cannot be reached
        try:
            await self.hub.presence.connect(caller.clinic_id, caller.user_id)
        except Exception:
            logger.warning("presence unavailable; the connection goes on without it", exc_info=True)

    def refuse(self, refused: Refused) -> None:
        """Close with the refusal's code; callable from timers and the watchdog (returns at once)."""
        if not self.closing:
            self.closing = True
            asyncio.get_running_loop().create_task(self.close_now(refused))

    async def close_now(self, refused: Refused) -> None:
        logger.info("ws refused (%s): %s", refused.code, refused.reason)
        self.closing = True
        if self.sender is not None:
            self.sender.drop()
        try:
            await self.close(code=refused.code, reason=refused.reason[:120])
        except OSError:
            logger.debug("ws: the client had gone already")

    def overflowed(self) -> None:
        self.refuse(Refused(CLOSE_TOO_SLOW, "too far behind; reconnect and resume"))

    async def _cleanup(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        if self.ended or self.caller is None or self.sender is None:
            return
        self.ended = True
        stats.counts["ws_disconnects"] += 1
        clinic_id = self.caller.clinic_id
        self.hub.detach(clinic_id, self.sender)
        self.hub.watchdog.unwatch(self)
        for conversation_id in self.joined or ():
            self.tell_clinic("conversation:viewing", conversation_id, viewing=False)
        if self.counted:
            self.hub.presence.disconnect(clinic_id, self.caller.user_id)

    # --- Frames from the client ---------------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.rate is None:
            self.rate = FrameRateLimit(per_minute=settings.WS_FRAMES_PER_MINUTE)
        verdict = self.rate.hit()
        if verdict == "close":
            await self.close_now(Refused(auth.CLOSE_RATE_LIMITED, "too many frames"))
            return
        if verdict == "refuse":
            await self.send_error("rate_limited", f"At most {settings.WS_FRAMES_PER_MINUTE} frames a minute.")
            return
        if text_data is None:
            await self.send_error("binary_frame", "Frames are JSON text; binary frames are not read.")
            return
        raw = text_data
        if len(raw.encode()) > frames.MAX_FRAME_BYTES:
            await self.send_error("frame_too_large", f"Frames hold at most {frames.MAX_FRAME_BYTES} bytes.")
            return
        try:
            frame = frames.parse(raw)
        except frames.FrameError as error:
            await self.send_error(error.code, error.detail)
            return
        if self.caller is None:
            await self.authenticate_by_frame(frame)
            return
        await getattr(self, "on_" + frame.type.replace(":", "_"))(frame.data)

    async def authenticate_by_frame(self, frame: frames.Frame) -> None:
        if frame.type != "auth" or self.closing:
            await self.close_now(
                Refused(auth.CLOSE_NOT_AUTHENTICATED, 'authenticate first: {"type": "auth", "token": …}')
            )
            return
        since = auth.changes()
        try:
            caller, ends_at = await auth.by_token(frame.data["token"])
        except Refused as refused:
            await self.close_now(refused)
            return
        await self.start(caller, ends_at, since)

    async def on_auth(self, data: dict) -> None:
        await self.send_error("already_authenticated", "This connection is already authenticated.")

    async def on_ping(self, data: dict) -> None:
        await self.send_json({"type": "pong", "seq": self.sender.seq})

    async def on_resume(self, data: dict) -> None:
        """Replay what came before hello after `after`, for clients that resume by frame rather than with
        `/ws/?after=`: live frames may have gone out first, so such a client orders by seq."""
        for frame in await self.replay(data["after"], upto=self.hello_seq, sent=self.sender.seq):
            self.sender.put(text_message(frame))

    async def replay(self, after: int, upto: int, sent: int = 0) -> list[str]:
        """The frames of the log after `after` up to `upto`, then `resumed`; `resync` past the bound, or
        for a seq this connection never knew (a restored database)."""
        if after > max(upto, sent):
            return [_json({"type": "resync", "seq": upto})]
        events = await db.run(log.events_after, self.caller.clinic_id, after, REPLAY_LIMIT + 1, upto)
        if len(events) > REPLAY_LIMIT or log.pruned(events, after, upto):
            return [_json({"type": "resync", "seq": upto})]
        return [*map(log.frame_of, events), _json({"type": "resumed", "seq": upto})]

    async def on_conversation_join(self, data: dict) -> None:
        conversation_id = data["conversation_id"]
        if self.joined is None:
            self.joined = set()
        # Checked once: the browser re-joins every 30 s to refresh who is viewing, with no database work.
        if conversation_id not in self.joined and not await db.run(
            auth.access().conversation_in_clinic, self.caller.clinic_id, conversation_id
        ):
            await self.send_error("not_found", "No such conversation in your clinic.", conversation_id=conversation_id)
            return
        self.joined.add(conversation_id)
        await self.send_json({"type": "conversation:joined", "conversation_id": conversation_id})
        # Colleagues see who has it open; a client re-joins now and then, which refreshes their view.
        self.tell_clinic("conversation:viewing", conversation_id, viewing=True)

    async def on_conversation_leave(self, data: dict) -> None:
        conversation_id = data["conversation_id"]
        if self.joined and conversation_id in self.joined:
            self.joined.discard(conversation_id)
            self.tell_clinic("conversation:viewing", conversation_id, viewing=False)
        await self.send_json({"type": "conversation:left", "conversation_id": conversation_id})

    async def on_conversation_typing(self, data: dict) -> None:
        conversation_id, is_typing = data["conversation_id"], data["is_typing"]
        if not self.joined or conversation_id not in self.joined:
            await self.send_error(
                "not_joined", "Join the conversation before typing in it.", conversation_id=conversation_id
            )
            return
        if self.typing_sent is None:
            self.typing_sent = {}
        previous = self.typing_sent.get(conversation_id)
        now = time.monotonic()
        if previous and previous[0] == is_typing and now - previous[1] < TYPING_MIN_INTERVAL:
            return  # throttled: the others already know, and their hint lasts 6 s
        self.typing_sent[conversation_id] = (is_typing, now)
        # To the whole clinic, not only those who joined: the list shows "digitando…" on the row too.
        self.tell_clinic("conversation:typing", conversation_id, is_typing=is_typing)

    @staticmethod
    def hint(caller: Caller, type: str, conversation_id: int, **data) -> str:
        """An ephemeral frame about this user in a conversation (typing, viewing)."""
        user = {"id": caller.user_id, "name": caller.name}
        return log.render_ephemeral(type, {"user": user, **data}, conversation_id=conversation_id)

    def tell_clinic(self, type: str, conversation_id: int, **data) -> None:
        """To the clinic's other screens, in every process; never back to this one."""
        self.hub.ephemeral(self.caller.clinic_id, self.hint(self.caller, type, conversation_id, **data), self.sender)

    async def on_message_read(self, data: dict) -> None:
        error = await db.run(auth.access().mark_read, self.caller, data["conversation_id"], data["message_id"])
        if error:
            await self.send_error("not_found", error, conversation_id=data["conversation_id"])

    # --- Sending ------------------------------------------------------------------------------------

    async def send_json(self, content: dict) -> None:
        if self.sender is not None:
            self.sender.put(text_message(_json(content)))
        else:
            try:
                await self.send(text_data=_json(content))
            except OSError:
                logger.debug("ws: the client had gone already")

    async def send_error(self, code: str, detail: str, **extra) -> None:
        logger.info("ws clinic=%s refused a frame: %s", self.caller.clinic_id if self.caller else None, code)
        await self.send_json({"type": "error", "code": code, "detail": detail, **extra})
