"""`GET /api/events/?after=<seq>`: the same frames as the WebSocket, for clients that cannot keep one open.

Answers at once when the log has events after `after`; otherwise waits on the hub for the clinic's next
event, for up to LONGPOLL_SECONDS. It is an async view: while it waits it holds no thread, no database
connection and no subscription of its own (the hub's one per clinic serves every waiter). The watchdog
watches it as it does a socket: access that ends while it waits (or its credential's end) answers the
refusal at once. `clinic=<id>` (the page's clinic) answers 409 `clinic_changed` when the session works in
another clinic now.
"""

import asyncio
import logging

import orjson
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from realtime import auth, db, hub, log
from realtime.auth import CLOSE_FORBIDDEN, Caller, Refused

logger = logging.getLogger(__name__)
MAX_EVENTS = 500


async def caller_of(request: HttpRequest) -> tuple[Caller, float | None]:
    """The caller by `Authorization: Bearer` or by the session cookie, as the WebSocket finds it, and when
    its credential ends (epoch seconds), if it does."""
    headers = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in request.headers.items()]
    if token := auth.bearer_from_headers(headers):
        return await auth.by_token(token)
    if session_key := request.COOKIES.get(settings.SESSION_COOKIE_NAME):
        if (caller := await auth.by_session(session_key)) is not None:
            return caller, caller.session_expires_at
    raise Refused(auth.CLOSE_NOT_AUTHENTICATED, "Log in, or send Authorization: Bearer <token>.")


class Waiting:
    """A long-poll while it waits, as the watchdog sees a socket: an access change (a membership removed, a
    user deactivated, a logout, a password changed) or its credential's end refuses it, and it answers that
    instead of events."""

    def __init__(self, caller: Caller):
        self.caller = caller
        self.refused: asyncio.Future[Refused] = asyncio.get_running_loop().create_future()

    def refuse(self, refused: Refused) -> None:
        if not self.refused.done():
            self.refused.set_result(refused)


def _refusal(refused: Refused) -> JsonResponse:
    if refused.code == 1011:  # access could not be checked (the database away): try again, do not sign out
        body = {"code": "unavailable", "detail": "Access could not be checked just now; try again shortly."}
        return JsonResponse(body, status=503, headers={"Retry-After": "5"})
    status = 403 if refused.code == CLOSE_FORBIDDEN else 401
    return JsonResponse({"code": refused.api_code, "detail": refused.reason}, status=status)


async def events_longpoll(request: HttpRequest) -> HttpResponse:
    if request.method != "GET":
        return JsonResponse({"code": "method_not_allowed", "detail": "Use GET."}, status=405)
    since = auth.changes()  # access changes heard before the credential's check began
    try:
        caller, ends_at = await caller_of(request)
    except Refused as refused:
        return _refusal(refused)
    try:
        after = int(request.GET.get("after", ""))
        if after < 0:
            raise ValueError
    except ValueError:
        return JsonResponse(
            {"code": "invalid", "detail": "after: the last seq you have, a whole number ≥ 0.", "field": "after"},
            status=400,
        )
    clinic_id = caller.clinic_id
    if (page_clinic := request.GET.get("clinic")) is not None and page_clinic != str(clinic_id):
        # The session works in another clinic now (chosen in another tab): this page's seq means nothing here.
        return JsonResponse(
            {
                "code": "clinic_changed",
                "detail": "Your session works in another clinic now; reload.",
                "clinic": clinic_id,
            },
            status=409,
        )
    events, latest = await _after(clinic_id, after)
    if not events and after == latest:
        try:
            refused = await _wait(caller, after, since, ends_at)
        except Exception:
            logger.warning("long-poll: the hub could not wait; answering from the log", exc_info=True)
            refused = None
        if refused is not None:
            return _refusal(refused)
        events, latest = await _after(clinic_id, after)
    if len(events) > MAX_EVENTS or after > latest or log.pruned(events, after, latest):
        body = orjson.dumps({"events": [{"type": "resync", "seq": latest}], "seq": latest})
    else:
        body = b'{"events":[' + ",".join(map(log.frame_of, events)).encode() + b'],"seq":%d}' % latest
    return HttpResponse(body, content_type="application/json")


async def _wait(caller: Caller, after: int, since: int, ends_at: float | None) -> Refused | None:
    """Wait for the clinic's next event, watched for access changes meanwhile; the refusal if access ended
    (checked again before answering when a change was heard, which the watchdog's own check may not have
    finished looking at)."""
    current = await hub.current()
    waiting = Waiting(caller)
    current.watchdog.watch(waiting, since=since, ends_at=ends_at)
    event = asyncio.ensure_future(current.wait_after(caller.clinic_id, after, settings.LONGPOLL_SECONDS))
    try:
        await asyncio.wait({event, waiting.refused}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        current.watchdog.unwatch(waiting)
        if not event.done():
            event.cancel()
    if waiting.refused.done():
        return waiting.refused.result()
    event.result()  # a hub that failed to wait says so here
    if auth.changed_since(caller.user_id, since):
        return await db.run(auth.access().still_allowed, caller)
    return None


async def _after(clinic_id: int, after: int):
    def read():
        latest = log.latest_seq(clinic_id)  # first: every event up to it is then in the read that follows
        return log.events_after(clinic_id, after, MAX_EVENTS + 1), latest

    return await db.run(read)
