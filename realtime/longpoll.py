"""`GET /api/events/?after=<seq>`: the same frames as the WebSocket, for clients that cannot keep one open.

Answers at once when the log has events after `after`; otherwise waits for a poke on the clinic's group
for up to LONGPOLL_SECONDS. It is an async view: while it waits it holds no thread and no database
connection (the sync parts run through database_sync_to_async, which hands the connection back).
"""

import asyncio
import logging

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from rest_framework import exceptions
from rest_framework.request import Request

from conversations.api.auth import ClinicJWTAuthentication, ClinicSessionAuthentication
from realtime.events import clinic_group, events_after, latest_seq, render_frame

logger = logging.getLogger(__name__)
MAX_EVENTS = 500


def caller_clinic(request: HttpRequest) -> int | JsonResponse:
    """The caller's clinic id by JWT or session, or the JSON error the API would give."""
    drf_request = Request(request)
    try:
        for authenticator in (ClinicJWTAuthentication(), ClinicSessionAuthentication()):
            result = authenticator.authenticate(drf_request)
            if result is not None:
                membership = result[1].membership
                if membership is None:
                    return JsonResponse({"code": "no_active_clinic", "detail": "Choose a clinic first."}, status=403)
                return membership.clinic_id
    except exceptions.AuthenticationFailed as failed:
        detail = failed.detail if isinstance(failed.detail, dict) else {"detail": str(failed.detail)}
        return JsonResponse(
            {"code": str(detail.get("code", "authentication_failed")), "detail": str(detail.get("detail"))}, status=401
        )
    return JsonResponse(
        {"code": "not_authenticated", "detail": "Log in, or send Authorization: Bearer <token>."}, status=401
    )


async def events_longpoll(request: HttpRequest) -> HttpResponse:
    if request.method != "GET":
        return JsonResponse({"code": "method_not_allowed", "detail": "Use GET."}, status=405)
    clinic_id = await database_sync_to_async(caller_clinic)(request)
    if isinstance(clinic_id, HttpResponse):
        return clinic_id
    try:
        after = int(request.GET.get("after", ""))
        if after < 0:
            raise ValueError
    except ValueError:
        return JsonResponse(
            {"code": "invalid", "detail": "after: the last seq you have, a whole number ≥ 0.", "field": "after"},
            status=400,
        )

    layer = get_channel_layer()
    channel = await layer.new_channel()
    group = clinic_group(clinic_id)
    try:
        # Joined before reading the log, so an event committed in between still wakes this request.
        await layer.group_add(group, channel)
        events = await database_sync_to_async(events_after)(clinic_id, after, MAX_EVENTS + 1)
        if not events:
            try:
                await asyncio.wait_for(layer.receive(channel), timeout=settings.LONGPOLL_SECONDS)
            except TimeoutError:
                pass
            events = await database_sync_to_async(events_after)(clinic_id, after, MAX_EVENTS + 1)
    except Exception:
        logger.warning("long-poll: channel layer unavailable; answering from the log", exc_info=True)
        events = await database_sync_to_async(events_after)(clinic_id, after, MAX_EVENTS + 1)
    finally:
        try:
            await layer.group_discard(group, channel)
        except Exception:
            logger.debug("long-poll: could not leave the group", exc_info=True)
    latest = await database_sync_to_async(latest_seq)(clinic_id)
    if len(events) > MAX_EVENTS or after > latest:
        body = f'{{"events":[{{"type":"resync","seq":{latest}}}],"seq":{latest}}}'
    else:
        body = '{"events":[' + ",".join(render_frame(e) for e in events) + f'],"seq":{latest}}}'
    return HttpResponse(body, content_type="application/json")
