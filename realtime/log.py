"""The event log: append a clinic's durable event in the caller's transaction, read what came after a seq,
and render frames (once per event, the same text for every recipient)."""

from datetime import datetime

import orjson
from django.apps import apps
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from realtime import broadcast
from realtime.models import Event

DURABLE_TYPES = frozenset(
    {
        "message:new",
        "message:status",
        "message:updated",
        "message:read",
        "conversation:new",
        "conversation:updated",
        "conversation:deleted",
        "conversation:action",
        "note:new",
        "quick_replies:changed",
        "labels:changed",
        "clinic:hours",
    }
)


def tenant_model():
    """The model whose rows own an event log and count its seq (`event_seq`): the clinic, handed down by
    the REALTIME_TENANT_MODEL setting, so that the log never imports the domain above it."""
    return apps.get_model(settings.REALTIME_TENANT_MODEL)


def data_json(data: dict) -> bytes:
    """An event's data as JSON, once: what is stored is what is sent."""
    return orjson.dumps(data, default=str)


def render_frame(type: str, seq: int, conversation_id: int | None, data: bytes | dict, at: datetime) -> str:
    """The frame's text: `{"type", "seq", "conversation_id", "data", "at"}`."""
    if not isinstance(data, bytes):
        data = data_json(data)
    head = orjson.dumps({"type": type, "seq": seq, "conversation_id": conversation_id})
    return (head[:-1] + b',"data":' + data + b',"at":"' + at.isoformat().encode() + b'"}').decode()


def frame_of(event: Event) -> str:
    """A logged event as its frame (replays and gap fills)."""
    return render_frame(event.type, event.seq, event.conversation_id, event.data, event.created_at)


def render_ephemeral(type: str, data: dict, conversation_id: int | None = None) -> str:
    """An ephemeral frame (typing, viewing, presence): never logged, no seq."""
    frame = {"type": type, "conversation_id": conversation_id, "data": data, "at": timezone.now().isoformat()}
    return orjson.dumps(frame, default=str).decode()


def latest_seq(clinic_id: int) -> int:
    """The clinic's last seq handed out."""
    return tenant_model().objects.values_list("event_seq", flat=True).get(pk=clinic_id)


def latest_seqs(clinic_ids: list[int]) -> dict[int, int]:
    """The last seq of each clinic given, in one query."""
    return dict(tenant_model().objects.filter(pk__in=clinic_ids).values_list("pk", "event_seq"))


def events_after(clinic_id: int, after: int, limit: int, upto: int | None = None) -> list[Event]:
    """The clinic's durable events after `after` (and up to `upto`), in seq order, at most `limit`."""
    events = Event.objects.filter(clinic_id=clinic_id, seq__gt=after)
    if upto is not None:
        events = events.filter(seq__lte=upto)
    return list(events.order_by("seq")[:limit])


def pruned(events: list[Event], after: int, upto: int) -> bool:
    """Whether the log no longer holds what comes right after `after` (retention deleted it): the client
    cannot be caught up from the log and reloads instead (resync)."""
    return upto > after and (not events or events[0].seq != after + 1)


def _append(clinic_id: int, type: str, conversation_id: int | None, data: bytes, at: datetime) -> tuple[int, int]:
    """Take the clinic's next seq and insert the event; returns (event id, seq).

    The UPDATE holds the clinic row lock until commit, so commit order equals seq order. On PostgreSQL
    both are one statement (DESIGN §10); elsewhere two.
    """
    tenants = connection.ops.quote_name(tenant_model()._meta.db_table)
    events = connection.ops.quote_name(Event._meta.db_table)
    columns = "(clinic_id, seq, type, conversation_id, data, created_at)"
    stored_at = connection.ops.adapt_datetimefield_value(at)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"WITH next AS (UPDATE {tenants} SET event_seq = event_seq + 1 WHERE id = %s RETURNING event_seq) "
                f"INSERT INTO {events} {columns} SELECT %s, event_seq, %s, %s, %s::jsonb, %s FROM next "
                "RETURNING id, seq",
                [clinic_id, clinic_id, type, conversation_id, data.decode(), stored_at],
            )
            row = cursor.fetchone()
        else:
            cursor.execute(
                f"UPDATE {tenants} SET event_seq = event_seq + 1 WHERE id = %s RETURNING event_seq", [clinic_id]
            )
            seq = cursor.fetchone()
            row = None
            if seq is not None:
                cursor.execute(
                    f"INSERT INTO {events} {columns} VALUES (%s, %s, %s, %s, %s, %s) RETURNING id, seq",
                    [clinic_id, seq[0], type, conversation_id, data.decode(), stored_at],
                )
                row = cursor.fetchone()
    if row is None:
        raise tenant_model().DoesNotExist(f"No clinic with id {clinic_id} to publish to.")
    return row[0], row[1]


def append_ctes(after: str, count: int = 1, data: dict[int, str] | None = None) -> str:
    """For a write done in one statement on PostgreSQL (DESIGN §10): two CTEs that, when the CTE named
    `after` has a row, take the clinic's next `count` seqs and log `count` events. They read the
    parameters of `event_params()`; `data` may give an SQL expression for an event's data instead (to
    complete it with a value the statement makes). The statement can return `(SELECT max(seq) FROM
    logged)`. Broadcast the events with `committed()` once the statement has committed."""
    tenants = connection.ops.quote_name(tenant_model()._meta.db_table)
    events = connection.ops.quote_name(Event._meta.db_table)
    data = data or {}
    rows = " UNION ALL ".join(
        f"SELECT %(clinic_id)s, event_seq - {count - 1 - n}, %(event_type_{n})s, %(event_conversation_{n})s, "
        f"{data.get(n, f'%(event_data_{n})s::jsonb')}, %(event_at)s FROM next_seq"
        for n in range(count)
    )
    return (
        f"next_seq AS (UPDATE {tenants} SET event_seq = event_seq + {count} FROM {after} "
        f"WHERE {tenants}.id = %(clinic_id)s RETURNING event_seq), "
        f"logged AS (INSERT INTO {events} (clinic_id, seq, type, conversation_id, data, created_at) {rows} "
        "RETURNING seq)"
    )


def event_params(clinic_id: int, events: list[tuple[str, int | None, bytes]], at: datetime) -> dict:
    """The parameters of append_ctes for `events`: (type, conversation id, data JSON) each, in order."""
    params = {"clinic_id": clinic_id, "event_at": at}
    for n, (type, conversation_id, data) in enumerate(events):
        if type not in DURABLE_TYPES:
            raise ValueError(f"{type!r} is not a durable event type.")
        params |= {
            f"event_type_{n}": type,
            f"event_conversation_{n}": conversation_id,
            f"event_data_{n}": data.decode(),
        }
    return params


def committed(clinic_id: int, last_seq: int, events: list[tuple[str, int | None, bytes]], at: datetime) -> None:
    """Broadcast the events a one-statement write logged (append_ctes), whose last seq is `last_seq`; call
    after its commit."""
    first = last_seq - len(events) + 1
    for seq, (type, conversation_id, data) in enumerate(events, start=first):
        broadcast.durable(clinic_id, seq, render_frame(type, seq, conversation_id, data, at))


def publish(clinic_id: int, type: str, data: dict, *, conversation_id: int | None = None) -> Event:
    """Append a durable event to the clinic's log and broadcast its frame once the transaction commits.

    Call inside the transaction that makes the change: nothing is logged or sent if it rolls back.
    `data` is plain JSON data (the shapes of conversations.wire).
    """
    if type not in DURABLE_TYPES:
        raise ValueError(f"{type!r} is not a durable event type; durable types are {sorted(DURABLE_TYPES)}.")
    if not connection.in_atomic_block:
        raise RuntimeError("publish() must run inside the transaction that makes the change (transaction.atomic).")
    payload, at = data_json(data), timezone.now()
    event_id, seq = _append(clinic_id, type, conversation_id, payload, at)
    frame = render_frame(type, seq, conversation_id, payload, at)
    transaction.on_commit(lambda: broadcast.durable(clinic_id, seq, frame), robust=True)
    return Event(
        id=event_id,
        clinic_id=clinic_id,
        seq=seq,
        type=type,
        conversation_id=conversation_id,
        data=orjson.loads(payload),
        created_at=at,
    )


def erase_data(clinic_id: int, conversation_ids: list[int]) -> int:
    """Blank the data of every logged event about these conversations (a patient's erasure): the events
    keep their seq and type, so the log stays gap-free; their copies of names and texts are gone."""
    if not conversation_ids:
        return 0
    return Event.objects.filter(clinic_id=clinic_id, conversation_id__in=conversation_ids).update(data={"erased": True})


def reassign(clinic_id: int, from_conversation: int, to_conversation: int) -> int:
    """The logged events of one conversation become another's (it joined that one): whatever later looks up
    the second's events — a patient's erasure above all — finds them too. Their seq stays."""
    return Event.objects.filter(clinic_id=clinic_id, conversation_id=from_conversation).update(
        conversation_id=to_conversation
    )


def count_before(clinic_id: int, cutoff: datetime) -> int:
    return Event.objects.filter(clinic_id=clinic_id, created_at__lt=cutoff).count()


def delete_before(clinic_id: int, cutoff: datetime, batch: int) -> int:
    """Delete up to `batch` of the clinic's oldest events logged before `cutoff` (retention); returns how
    many. A client that asks to resume from before what is left gets a resync, as past any bound."""
    ids = list(
        Event.objects.filter(clinic_id=clinic_id, created_at__lt=cutoff)
        .order_by("seq")
        .values_list("pk", flat=True)[:batch]
    )
    return Event.objects.filter(pk__in=ids).delete()[0] if ids else 0
