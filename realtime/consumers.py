"""The /ws/ consumer: one user in one clinic, receiving the clinic's event frames in seq order.

Authentication: the session cookie, an `Authorization: Bearer` header on the handshake, or an `auth` frame
within 5 s. Durable frames carry `seq`, and one connection sends them in seq order: it drops duplicates
and fills gaps from the event log. The resume point comes with the connection (`/ws/?after=<seq>`): the
log after it is replayed right after `hello`, then the live frames follow, so a client misses nothing,
sees nothing twice and never sees a later seq first; without it the connection is live at once.
"""

import asyncio
import json
import logging
import re
import time
import uuid
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from redis.exceptions import RedisError

from realtime import auth, frames, presence
from realtime.auth import Caller, Refused
from realtime.events import (
    clinic_group,
    conversation_group,
    events_after,
    latest_seq,
    render_ephemeral,
    render_frame,
)
from realtime.ratelimit import FrameRateLimit

logger = logging.getLogger(__name__)

MAX_FRAME_BYTES = 64 * 1024
CLOSE_BAD_REQUEST = 4400  # the connection's URL is malformed (a non-numeric ?after=)
REPLAY_LIMIT = 1000  # beyond this many missed events a client reloads over HTTP ("resync")
TYPING_MIN_INTERVAL = 2.0


class ClientGone(Exception):
    """A frame could not be sent because the client has gone; the connection ends without a word."""


class ClinicConsumer(AsyncWebsocketConsumer):
    caller: Caller | None = None
    last_seq = 0  # the last durable seq this connection sent (from hello on)
    hello_seq = 0
    resume_after: int | None = None  # from /ws/?after=<seq>

    async def __call__(self, scope, receive, send):
        # The channel layer can fail under a live socket (Redis restarted). Rather than drop the connection
        # without a word, close it as "service restart" (1012): the client reconnects and resumes.
        try:
            await super().__call__(scope, receive, send)
        except ClientGone:
            logger.debug("ws: the client went away while frames were being sent to it")
            await self.disconnect(1006)
        except (ConnectionError, OSError, RedisError) as error:
            logger.warning("ws: the channel layer failed (%r); closing with 1012 so the client resumes", error)
            try:
                await self.disconnect(1012)
            except Exception:
                logger.debug("ws: cleanup after the layer failure failed too", exc_info=True)
            try:
                await send({"type": "websocket.close", "code": 1012})
            except Exception:
                logger.debug("ws: the socket was already gone", exc_info=True)

    async def dispatch(self, message: dict) -> None:
        # Departure from stock Channels: its dispatch awaits aclose_old_connections() — a hop to the one
        # thread-sensitive thread — for every frame delivered, which caps a process far below its fan-out
        # (DESIGN §10). Handlers that touch the database go through database_sync_to_async, which closes
        # stale connections in its own thread.
        handler = getattr(self, message["type"].replace(".", "_"), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    # --- Connecting ---------------------------------------------------------------------------------

    async def connect(self) -> None:
        self.connection_id = uuid.uuid4().hex[:12]
        self.joined: set[int] = set()
        self.typing_sent: dict[int, tuple[bool, float]] = {}
        self.rate = FrameRateLimit(per_minute=settings.WS_FRAMES_PER_MINUTE)
        self.background: list[asyncio.Task] = []
        # Durable frames go out from the dispatch loop and from watch(): one at a time, in seq order.
        self.durable = asyncio.Lock()
        # Accepted before checking, so that the client receives the close code rather than a bare 403.
        await self.accept()
        query = self.scope.get("query_string", b"")
        if b"token" in query.lower():
            await self.refuse(
                Refused(auth.CLOSE_NOT_AUTHENTICATED, "tokens in the URL are refused; send a header or an auth frame")
            )
            return
        after = parse_qs(query.decode("latin-1")).get("after")
        if after is not None:
            if not re.fullmatch(r"[0-9]{1,18}", after[0]):
                await self.refuse(Refused(CLOSE_BAD_REQUEST, "after must be the last seq you have, a whole number"))
                return
            self.resume_after = int(after[0])
        try:
            user = self.scope.get("user")
            if user is not None and user.is_authenticated:
                caller = await database_sync_to_async(auth.by_session)(user, self.scope.get("session"))
            elif token := auth.bearer_from_headers(self.scope.get("headers", [])):
                caller = await database_sync_to_async(auth.by_token)(token)
            else:
                self.spawn(self.auth_deadline)
                return
        except Refused as refused:
            await self.refuse(refused)
            return
        await self.start(caller)

    async def auth_deadline(self) -> None:
        await asyncio.sleep(settings.WS_AUTH_TIMEOUT_SECONDS)
        if self.caller is None:
            await self.refuse(Refused(auth.CLOSE_AUTH_TIMEOUT, "no auth frame within 5 seconds"))

    async def start(self, caller: Caller) -> None:
        # Under the durable lock: a live frame that arrives meanwhile waits, and goes out after hello and
        # the replay, in seq order.
        async with self.durable:
            await self.greet(caller)
        try:
            change = await presence.connect(self.clinic_id, self.user_id, self.connection_id)
            if change:
                await self.announce(change)
        except Exception:
            logger.warning("presence unavailable; the connection goes on without it", exc_info=True)
        self.spawn(self.watch)

    async def greet(self, caller: Caller) -> None:
        """Join the clinic's broadcast, say hello with the clinic's latest seq, and replay what the client
        missed before it (`?after=`). Call with `self.durable` held."""
        self.caller = caller
        self.clinic_id = caller.membership.clinic_id
        self.user_id = caller.membership.user_id
        await self.channel_layer.group_add(clinic_group(self.clinic_id), self.channel_name)
        self.last_seq = self.hello_seq = await database_sync_to_async(latest_seq)(self.clinic_id)
        user, clinic = caller.membership.user, caller.membership.clinic
        await self.send_json(
            {
                "type": "hello",
                "user": {
                    "id": user.pk,
                    "name": user.get_full_name() or user.get_username(),
                    "role": caller.membership.role,
                },
                "clinic": {"id": clinic.pk, "name": clinic.name, "slug": clinic.slug, "timezone": clinic.timezone},
                "seq": self.last_seq,
            }
        )
        if self.resume_after is not None:
            await self.replay(self.resume_after, upto=self.hello_seq)

    def spawn(self, work) -> None:
        self.background.append(asyncio.create_task(self.guarded(work)))

    async def guarded(self, work) -> None:
        """Run a background part of the connection. If it fails, the connection closes (1011) rather than
        live on without its access checks; the client reconnects."""
        try:
            await work()  # made here: a task cancelled before it starts leaves no coroutine unawaited
        except ClientGone:
            pass
        except Exception:
            logger.exception("ws: a background check failed; closing with 1011 so the client reconnects")
            try:
                await self.close(code=1011)
            except Exception:
                logger.debug("ws: the socket was already gone", exc_info=True)

    async def refuse(self, refused: Refused) -> None:
        logger.info("ws refused (%s): %s", refused.code, refused.reason)
        await self.close(code=refused.code, reason=refused.reason[:120])

    async def disconnect(self, code: int) -> None:
        for task in self.background:
            task.cancel()
        if self.caller is None:
            return
        try:
            await self.channel_layer.group_discard(clinic_group(self.clinic_id), self.channel_name)
            for conversation_id in self.joined:
                await self.channel_layer.group_discard(conversation_group(conversation_id), self.channel_name)
                await self.tell_clinic("conversation:viewing", conversation_id, viewing=False)
        except Exception:
            logger.debug("ws: could not leave the groups (the layer is down)", exc_info=True)
        # The grace period runs detached: this connection is already gone.
        asyncio.get_running_loop().create_task(self.leave_presence())

    async def leave_presence(self) -> None:
        try:
            change = await presence.disconnect(self.clinic_id, self.user_id, self.connection_id)
            if change:
                await self.announce(change)
        except Exception:
            logger.warning("presence: could not record a disconnect", exc_info=True)

    async def watch(self) -> None:
        """While the socket lives: refresh presence, re-check access, close at token expiry, and catch up
        from the log if the channel layer lost frames (it is at-most-once; a Redis restart drops them)."""
        interval = settings.WS_RECHECK_SECONDS
        while True:
            wait = interval
            if self.caller.expires_at is not None:
                wait = max(0.0, min(interval, self.caller.expires_at - time.time()))
            await asyncio.sleep(wait)
            if self.caller.expires_at is not None and time.time() >= self.caller.expires_at:
                await self.refuse(Refused(auth.CLOSE_NOT_AUTHENTICATED, "token expired"))
                return
            refused = await database_sync_to_async(auth.still_allowed)(self.caller)
            if refused is not None:
                await self.refuse(refused)
                return
            try:
                await presence.refresh(self.clinic_id, self.user_id, self.connection_id)
                for change in await presence.sweep(self.clinic_id):
                    await self.announce(change)
                # Re-joining is idempotent, and restores a membership a layer restart forgot.
                await self.channel_layer.group_add(clinic_group(self.clinic_id), self.channel_name)
                for conversation_id in self.joined:
                    await self.channel_layer.group_add(conversation_group(conversation_id), self.channel_name)
            except Exception:
                logger.warning("ws: presence or channel layer unavailable; catching up from the log", exc_info=True)
            async with self.durable:
                await self.catch_up()

    # --- Frames from the server ---------------------------------------------------------------------

    async def event_frame(self, message: dict) -> None:
        """A frame rendered once at publish: sent as it is, after any gap before it is filled."""
        seq = message.get("seq")
        if self.caller is None:
            return
        if seq is None:  # ephemeral (typing, presence)
            if message.get("sender") != self.channel_name:
                await self.send(text_data=message["text"])
            return
        async with self.durable:
            await self.send_durable(seq, message["text"])

    async def send_durable(self, seq: int, text: str) -> None:
        """Send one durable frame in order: nothing already sent, and any gap before it first, from the log."""
        if seq <= self.last_seq:
            return  # already sent (by a gap fill)
        if seq > self.last_seq + 1:
            await self.catch_up(until=seq - 1)
            if seq <= self.last_seq:
                return
        await self.send(text_data=text)
        self.last_seq = seq

    async def catch_up(self, until: int | None = None) -> bool:
        """Send what the log has after the last seq sent; False (and a resync) when too much is missing."""
        events = await database_sync_to_async(events_after)(self.clinic_id, self.last_seq, REPLAY_LIMIT + 1)
        if len(events) > REPLAY_LIMIT:
            latest = await database_sync_to_async(latest_seq)(self.clinic_id)
            self.last_seq = latest
            await self.send_json({"type": "resync", "seq": latest})
            return False
        for event in events:
            if until is not None and event.seq > until:
                break
            await self.send(text_data=render_frame(event))
            self.last_seq = event.seq
        return True

    async def announce(self, change: presence.Change) -> None:
        frame = render_ephemeral("user:status", {"user_id": change.user_id, "status": change.status})
        await self.channel_layer.group_send(
            clinic_group(self.clinic_id), {"type": "event.frame", "text": frame, "seq": None, "sender": None}
        )

    # --- Frames from the client ---------------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        raw = text_data if text_data is not None else (bytes_data or b"").decode("utf-8", "replace")
        verdict = self.rate.hit()
        if verdict == "close":
            await self.refuse(Refused(auth.CLOSE_RATE_LIMITED, "too many frames"))
            return
        if verdict == "refuse":
            await self.send_error("rate_limited", f"At most {settings.WS_FRAMES_PER_MINUTE} frames a minute.")
            return
        if len(raw.encode()) > MAX_FRAME_BYTES:
            await self.send_error("frame_too_large", f"Frames hold at most {MAX_FRAME_BYTES} bytes.")
            return
        try:
            frame = frames.parse(raw)
        except frames.FrameError as error:
            await self.send_error(error.code, error.detail)
            return
        if self.caller is None:
            await self.authenticate_by_frame(frame)
            return
        handler = getattr(self, "on_" + frame.type.replace(":", "_"))
        await handler(frame.data)

    async def authenticate_by_frame(self, frame: frames.Frame) -> None:
        if frame.type != "auth":
            await self.refuse(Refused(auth.CLOSE_NOT_AUTHENTICATED, 'authenticate first: {"type": "auth", "token": …}'))
            return
        try:
            caller = await database_sync_to_async(auth.by_token)(frame.data["token"])
        except Refused as refused:
            await self.refuse(refused)
            return
        await self.start(caller)

    async def on_auth(self, data: dict) -> None:
        await self.send_error("already_authenticated", "This connection is already authenticated.")

    async def on_ping(self, data: dict) -> None:
        await self.send_json({"type": "pong", "seq": self.last_seq})

    async def on_resume(self, data: dict) -> None:
        """Replay what came before hello after `after`, for clients that resume by frame rather than with
        `/ws/?after=`: live frames may have gone out first, so such a client orders by seq."""
        async with self.durable:
            await self.replay(data["after"], upto=self.hello_seq)

    async def replay(self, after: int, upto: int) -> None:
        """Send the log after `after` up to `upto`, then `resumed`; `resync` past the bound, or for a seq
        this connection never knew (a restored database)."""
        if after > max(upto, self.last_seq):
            await self.send_json({"type": "resync", "seq": upto})
            return
        events = await database_sync_to_async(events_after)(self.clinic_id, after, REPLAY_LIMIT + 1)
        events = [e for e in events if e.seq <= upto]
        if len(events) > REPLAY_LIMIT:
            await self.send_json({"type": "resync", "seq": upto})
            return
        for event in events:
            await self.send(text_data=render_frame(event))
        await self.send_json({"type": "resumed", "seq": upto})

    async def on_conversation_join(self, data: dict) -> None:
        conversation_id = data["conversation_id"]
        # Checked once: the browser re-joins every 30 s to refresh who is viewing, with no database work.
        exists = conversation_id in self.joined or await database_sync_to_async(self._conversation_in_clinic)(
            conversation_id
        )
        if not exists:
            await self.send_error("not_found", "No such conversation in your clinic.", conversation_id=conversation_id)
            return
        self.joined.add(conversation_id)
        await self.channel_layer.group_add(conversation_group(conversation_id), self.channel_name)
        await self.send_json({"type": "conversation:joined", "conversation_id": conversation_id})
        # Colleagues see who has it open; a client re-joins now and then, which refreshes their view.
        await self.tell_clinic("conversation:viewing", conversation_id, viewing=True)

    def _conversation_in_clinic(self, conversation_id: int) -> bool:
        from conversations.models import Conversation

        return Conversation.objects.filter(pk=conversation_id, clinic_id=self.clinic_id).exists()

    async def on_conversation_leave(self, data: dict) -> None:
        conversation_id = data["conversation_id"]
        if conversation_id in self.joined:
            self.joined.discard(conversation_id)
            await self.channel_layer.group_discard(conversation_group(conversation_id), self.channel_name)
            await self.tell_clinic("conversation:viewing", conversation_id, viewing=False)
        await self.send_json({"type": "conversation:left", "conversation_id": conversation_id})

    async def on_conversation_typing(self, data: dict) -> None:
        conversation_id, is_typing = data["conversation_id"], data["is_typing"]
        if conversation_id not in self.joined:
            await self.send_error(
                "not_joined", "Join the conversation before typing in it.", conversation_id=conversation_id
            )
            return
        previous = self.typing_sent.get(conversation_id)
        now = time.monotonic()
        if previous and previous[0] == is_typing and now - previous[1] < TYPING_MIN_INTERVAL:
            return  # throttled: the others already know, and their hint lasts 6 s
        self.typing_sent[conversation_id] = (is_typing, now)
        # To the whole clinic, not only those who joined: the list shows "digitando…" on the row too.
        await self.tell_clinic("conversation:typing", conversation_id, is_typing=is_typing)

    async def tell_clinic(self, type: str, conversation_id: int, **data) -> None:
        """An ephemeral frame about this user in a conversation (typing, viewing), to the clinic's other screens."""
        user = self.caller.membership.user
        frame = render_ephemeral(
            type,
            {"user": {"id": user.pk, "name": user.get_full_name() or user.get_username()}, **data},
            conversation_id=conversation_id,
        )
        await self.channel_layer.group_send(
            clinic_group(self.clinic_id),
            {"type": "event.frame", "text": frame, "seq": None, "sender": self.channel_name},
        )

    async def on_message_read(self, data: dict) -> None:
        error = await database_sync_to_async(self._mark_read)(data["conversation_id"], data["message_id"])
        if error:
            await self.send_error("not_found", error, conversation_id=data["conversation_id"])

    def _mark_read(self, conversation_id: int, message_id: int) -> str | None:
        from conversations import selectors
        from conversations.actions.messages import mark_read
        from conversations.errors import ActionError

        conversation = selectors.conversation_of(self.caller.membership.clinic, conversation_id)
        message = selectors.message_in(conversation, message_id) if conversation else None
        if message is None:
            return "No such message in a conversation of your clinic."
        try:
            mark_read(user=self.caller.membership.user, conversation=conversation, message=message)
        except ActionError as refused:
            return refused.detail
        return None

    # --- Sending ------------------------------------------------------------------------------------

    async def send(self, text_data=None, bytes_data=None, close=False) -> None:
        try:
            await super().send(text_data=text_data, bytes_data=bytes_data, close=close)
        except OSError as error:  # the server's "client disconnected" (uvicorn: ClientDisconnected)
            raise ClientGone from error

    async def send_json(self, content: dict) -> None:
        await self.send(text_data=json.dumps(content, ensure_ascii=False, separators=(",", ":")))

    async def send_error(self, code: str, detail: str, **extra) -> None:
        logger.info("ws clinic=%s refused a frame: %s", getattr(self, "clinic_id", None), code)
        await self.send_json({"type": "error", "code": code, "detail": detail, **extra})
