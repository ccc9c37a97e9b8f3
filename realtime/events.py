"""Publishing: append an event to the clinic's log in the caller's transaction, broadcast it on commit."""

import json
import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone

from conversations.models import Clinic
from realtime.models import Event

logger = logging.getLogger(__name__)

DURABLE_TYPES = frozenset(
    {
        "message:new",
        "message:status",
        "message:updated",
        "message:read",
        "conversation:new",
        "conversation:updated",
        "conversation:action",
    }
)
# The channel-layer message type a consumer handles by sending `text` as it is.
FRAME_MESSAGE_TYPE = "event.frame"


def clinic_group(clinic_id: int) -> str:
    return f"clinic.{clinic_id}"


def conversation_group(conversation_id: int) -> str:
    return f"conversation.{conversation_id}"


def render_frame(event: Event) -> str:
    """The frame's text, rendered once per event and sent as is to every recipient (DESIGN §10)."""
    return json.dumps(
        {
            "type": event.type,
            "seq": event.seq,
            "conversation_id": event.conversation_id,
            "data": event.data,
            "at": event.created_at.isoformat(),
        },
        cls=DjangoJSONEncoder,
        ensure_ascii=False,
        separators=(",", ":"),
    )


def layer_message(frame: str, *, seq: int | None = None, sender: str | None = None) -> dict:
    return {"type": FRAME_MESSAGE_TYPE, "text": frame, "seq": seq, "sender": sender}


def latest_seq(clinic_id: int) -> int:
    """The clinic's last seq handed out. Read it after joining the clinic's group, never before: an event
    committed in between would be neither live nor behind the seq."""
    return Clinic.objects.values_list("event_seq", flat=True).get(pk=clinic_id)


def events_after(clinic_id: int, after: int, limit: int) -> list[Event]:
    """The clinic's durable events after `after`, in seq order, at most `limit`."""
    return list(Event.objects.filter(clinic_id=clinic_id, seq__gt=after).order_by("seq")[:limit])


def _next_seq(clinic_id: int) -> int:
    # UPDATE … RETURNING takes the clinic row lock until commit, so commit order equals seq order.
    table = connection.ops.quote_name(Clinic._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET event_seq = event_seq + 1 WHERE id = %s RETURNING event_seq", [clinic_id])
        row = cursor.fetchone()
    if row is None:
        raise Clinic.DoesNotExist(f"No clinic with id {clinic_id} to publish to.")
    return row[0]


def publish(clinic_id: int, type: str, data: dict, *, conversation_id: int | None = None) -> Event:
    """Append a durable event to the clinic's log and broadcast its frame once the transaction commits.

    Call inside the transaction that makes the change: nothing is logged or sent if it rolls back.
    """
    if type not in DURABLE_TYPES:
        raise ValueError(f"{type!r} is not a durable event type; durable types are {sorted(DURABLE_TYPES)}.")
    if not connection.in_atomic_block:
        raise RuntimeError("publish() must run inside the transaction that makes the change (transaction.atomic).")
    # Round-trip through JSON now, so what is stored and what is broadcast are the same values.
    data = json.loads(json.dumps(data, cls=DjangoJSONEncoder))
    event = Event.objects.create(
        clinic_id=clinic_id, seq=_next_seq(clinic_id), type=type, conversation_id=conversation_id, data=data
    )
    frame = render_frame(event)
    transaction.on_commit(lambda: broadcast(clinic_group(clinic_id), frame, seq=event.seq), robust=True)
    return event


def render_ephemeral(type: str, data: dict, conversation_id: int | None = None) -> str:
    """An ephemeral frame (typing, presence): never logged, no seq."""
    frame = {"type": type, "conversation_id": conversation_id, "data": data, "at": timezone.now().isoformat()}
    return json.dumps(frame, cls=DjangoJSONEncoder, ensure_ascii=False, separators=(",", ":"))


def broadcast(group: str, frame: str, *, seq: int | None = None, sender: str | None = None) -> bool:
    """Send a rendered frame to a channel-layer group; a layer failure is logged, never raised.

    The layer is a lossy poke: a client that misses a frame sees the seq gap and resumes from the log.
    `seq` lets each connection drop duplicates and notice gaps without decoding the frame.
    """
    try:
        async_to_sync(get_channel_layer().group_send)(group, layer_message(frame, seq=seq, sender=sender))
    except Exception:
        logger.warning("broadcast to %s failed; clients will catch up from the event log", group, exc_info=True)
        return False
    return True
