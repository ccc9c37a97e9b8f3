"""`GET /api/events/?after=<seq>`: the same frames as the WebSocket, for clients that cannot keep one open.

Answers at once when the log has events after `after`; otherwise waits on the hub for the clinic's next
event, for up to LONGPOLL_SECONDS. It is an async view: while it waits it holds no thread, no database
connection and no subscription of its own (the hub's one per clinic serves every waiter).
"""

import logging

import orjson
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from realtime import auth, db, hub, log
from realtime.auth import CLOSE_FORBIDDEN, Caller, Refused

logger = logging.getLogger(__name__)
MAX_EVENTS = 500


async def caller_of(request: HttpRequest) -> Caller:
    """The caller by `Authorization: Bearer` or by the session cookie, as the WebSocket finds it."""
    headers = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in request.headers.items()]
    if token := auth.bearer_from_headers(headers):
        return (await auth.by_token(token))[0]
    if session_key := request.COOKIES.get(settings.SESSION_COOKIE_NAME):
        if (caller := await auth.by_session(session_key)) is not None:
            return caller
    raise Refused(auth.CLOSE_NOT_AUTHENTICATED, "Log in, or send Authorization: Bearer <token>.")


def _refusal(refused: Refused) -> JsonResponse:
    status = 403 if refused.code == CLOSE_FORBIDDEN else 401
    return JsonResponse({"code": refused.api_code, "detail": refused.reason}, status=status)


async def events_longpoll(request: HttpRequest) -> HttpResponse:
    if request.method != "GET":
        return JsonResponse({"code": "method_not_allowed", "detail": "Use GET."}, status=405)
    try:
        caller = await caller_of(request)
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
    events, latest = await _after(clinic_id, after)
    if not events and after == latest:
        try:
            if await (await hub.current()).wait_after(clinic_id, after, settings.LONGPOLL_SECONDS):
                events, latest = await _after(clinic_id, after)
        except Exception:
            logger.warning("long-poll: the hub could not wait; answering from the log", exc_info=True)
    if len(events) > MAX_EVENTS or after > latest or log.pruned(events, after, latest):
        body = orjson.dumps({"events": [{"type": "resync", "seq": latest}], "seq": latest})
    else:
        body = b'{"events":[' + ",".join(map(log.frame_of, events)).encode() + b'],"seq":%d}' % latest
    return HttpResponse(body, content_type="application/json")


async def _after(clinic_id: int, after: int):
    def read():
        latest = log.latest_seq(clinic_id)  # first: every event up to it is then in the read that follows
        return log.events_after(clinic_id, after, MAX_EVENTS + 1), latest

    return await db.run(read)
