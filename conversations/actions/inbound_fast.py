"""The usual inbound messages in a statement or three (DESIGN §10), on PostgreSQL, without the ORM: a
patient the clinic knows by phone writing into their open conversation (one statement; one read more when
this process has not seen the patient lately), and a new patient's first message (three).

`receive_usual_message` stores such a message exactly as `receive_inbound_message` would (the same rows,
the same events and frames) and answers None for anything else — identifiers or a profile to record, a
resolved conversation to reopen, media to download, a quoted message, a username, a repeat — which the
caller then hands to the full action. Each write checks that what was read still holds (the patient's
and the conversation's `updated_at`, or that nobody has the new patient's identifiers), so a change in
between — by this process or another — sends the message down the full path rather than storing or
publishing something stale. What was read of a patient and their conversation is kept per process
(`Snapshot`), since the next message usually comes from the same patient.
"""

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime

import orjson
from django.db import connection
from django.utils import timezone

from conversations import read_cache, wire
from conversations.actions.contacts import usable_identifier
from conversations.models import Contact, Conversation, Direction, Message, MessageStatus, MessageType, SenderType
from realtime import db, log

logger = logging.getLogger(__name__)

MEDIA_TYPES = {MessageType.IMAGE, MessageType.VIDEO, MessageType.AUDIO, MessageType.DOCUMENT, MessageType.STICKER}
CONTACT_COLUMNS = (
    "id",
    "name",
    "phone",
    "whatsapp_user_id",
    "whatsapp_parent_user_id",
    "whatsapp_username",
    "profile_name",
    "email",
    "status",
    "created_at",
    "updated_at",
)
CONVERSATION_COLUMNS = ("id", "last_message_at", "updated_at")
MESSAGE_COLUMNS = (
    "clinic_id, conversation_id, direction, sender_type, sender_id, message_type, content, metadata, status, "
    "error, external_id, client_id, created_at, status_changed_at"
)
MESSAGE_VALUES = (
    "%(clinic_id)s, {conversation}, %(direction)s, %(sender_type)s, NULL, %(message_type)s, "
    "%(content)s, %(metadata)s::jsonb, %(status)s, '', %(external_id)s, NULL, %(at)s, %(at)s"
)
SNAPSHOTS = 20_000  # patients whose open conversation a process remembers


@dataclass(frozen=True)
class Snapshot:
    """A patient and their open conversation as last read or written by this process."""

    patient_id: int
    patient_updated_at: datetime
    phone: str
    user_id: str
    parent_id: str
    profile_name: str
    conversation_id: int
    conversation_updated_at: datetime
    last_message_at: datetime | None
    patient: dict  # as message:new names them (wire.patient_brief)


_snapshots: OrderedDict[tuple[int, str], Snapshot] = OrderedDict()
_snapshots_lock = threading.Lock()


def _remember(clinic_id: int, snapshot: Snapshot | None, phone: str) -> None:
    with _snapshots_lock:
        if snapshot is None:
            _snapshots.pop((clinic_id, phone), None)
            return
        _snapshots[clinic_id, phone] = snapshot
        _snapshots.move_to_end((clinic_id, phone))
        while len(_snapshots) > SNAPSHOTS:
            _snapshots.popitem(last=False)


def forget_snapshots() -> None:
    with _snapshots_lock:
        _snapshots.clear()


@dataclass(frozen=True)
class UsualResult:
    message_id: int
    conversation_id: int


@dataclass(frozen=True)
class Inbound:
    """The message as the webhook read it, identifiers normalised."""

    clinic_id: int
    phone: str
    user_id: str
    parent_id: str
    profile_name: str
    message_type: str
    content: str
    metadata: dict
    external_id: str
    at: datetime


def _table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _read(inbound: Inbound) -> list[tuple]:
    """Every patient of the clinic any identifier names (or one empty row), each with its open WhatsApp
    conversation."""
    contact = ", ".join(f"c.{c}" for c in CONTACT_COLUMNS)
    conversation = ", ".join(f"v.{c}" for c in CONVERSATION_COLUMNS)
    sql = (
        f"SELECT {contact}, {conversation} "
        f"FROM (SELECT 1) AS one LEFT JOIN {_table(Contact)} c ON c.clinic_id = %(clinic)s AND (c.phone = %(phone)s "
        "OR (%(user_id)s <> '' AND c.whatsapp_user_id = %(user_id)s) "
        "OR (%(parent_id)s <> '' AND c.whatsapp_parent_user_id = %(parent_id)s)) "
        f"LEFT JOIN {_table(Conversation)} v "
        "ON v.contact_id = c.id AND v.channel = %(channel)s AND v.status <> %(resolved)s"
    )
    params = {
        "clinic": inbound.clinic_id,
        "phone": inbound.phone,
        "user_id": inbound.user_id,
        "parent_id": inbound.parent_id,
        "channel": Conversation.Channel.WHATSAPP,
        "resolved": Conversation.Status.RESOLVED,
    }
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _snapshot_of(clinic_id: int, row: tuple) -> Snapshot | None:
    """The patient and their open conversation from a row of `_read`; None without an open conversation."""
    n = len(CONTACT_COLUMNS)
    patient = Contact(clinic_id=clinic_id, **dict(zip(CONTACT_COLUMNS, row[:n], strict=True)))
    thread = dict(zip(CONVERSATION_COLUMNS, row[n:], strict=True))
    if thread["id"] is None:
        return None
    return _snapshot(patient, thread["id"], thread["updated_at"], thread["last_message_at"])


def _snapshot(patient: Contact, conversation_id: int, updated_at: datetime, last_message_at) -> Snapshot:
    return Snapshot(
        patient_id=patient.pk,
        patient_updated_at=patient.updated_at,
        phone=patient.phone,
        user_id=patient.whatsapp_user_id,
        parent_id=patient.whatsapp_parent_user_id,
        profile_name=patient.profile_name,
        conversation_id=conversation_id,
        conversation_updated_at=updated_at,
        last_message_at=last_message_at,
        patient=wire.patient_brief(patient),
    )


def _fits(snapshot: Snapshot, inbound: Inbound) -> bool:
    """Whether the message adds nothing to record about the patient (found by phone, same ids and profile)."""
    return (
        snapshot.phone == inbound.phone
        and (not inbound.user_id or snapshot.user_id == inbound.user_id)
        and (not inbound.parent_id or snapshot.parent_id == inbound.parent_id)
        and (not inbound.profile_name or snapshot.profile_name == inbound.profile_name)
    )


def _checked(
    clinic_id, phone, user_id, parent_id, username, profile_name, message_type, content, metadata, external_id, at
) -> Inbound | None:
    """The message normalised, or None when it is not for the fast path at all."""
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        return None  # the statement must commit on its own, before its events are sent
    if message_type not in MessageType.values or message_type in MEDIA_TYPES or metadata.get("context"):
        return None
    if not external_id or timezone.is_naive(at) or (username or "").strip().lstrip("@"):
        return None
    phone_ok = usable_identifier("phone", phone)
    user_ok = usable_identifier("whatsapp_user_id", user_id) if user_id else ""
    parent_ok = usable_identifier("whatsapp_parent_user_id", parent_id) if parent_id else ""
    if not phone_ok or (user_id and not user_ok) or (parent_id and not parent_ok):
        return None
    name = (profile_name or "").strip()[:200]
    return Inbound(
        clinic_id, phone_ok, user_ok, parent_ok, name, message_type, content or "", metadata, external_id, at
    )


def receive_usual_message(
    *,
    clinic_id: int,
    phone: str,
    whatsapp_user_id: str = "",
    whatsapp_parent_user_id: str = "",
    whatsapp_username: str = "",
    profile_name: str = "",
    message_type: str,
    content: str,
    metadata: dict,
    external_id: str,
    happened_at: datetime,
) -> UsualResult | None:
    """Store a patient's message the fast way; None when it is not the usual case (the caller then uses
    receive_inbound_message). Call outside any transaction."""
    inbound = _checked(
        clinic_id,
        phone,
        whatsapp_user_id,
        whatsapp_parent_user_id,
        whatsapp_username,
        profile_name,
        message_type,
        content,
        metadata,
        external_id,
        happened_at,
    )
    if inbound is None:
        return None
    snapshot = _snapshots.get((clinic_id, inbound.phone))
    if snapshot is not None and _fits(snapshot, inbound):
        if (result := _into_conversation(inbound, snapshot)) is not None:
            return result
        _remember(clinic_id, None, inbound.phone)  # changed elsewhere: read it again
    rows = _read(inbound)
    if len(rows) != 1:
        return None  # identifiers spread over two patients
    if rows[0][0] is None:
        return _first_message(inbound)
    snapshot = _snapshot_of(clinic_id, rows[0])
    if snapshot is None or not _fits(snapshot, inbound):
        return None  # no open conversation, found by user id only, or identifiers or a profile to record
    return _into_conversation(inbound, snapshot)


def _message(inbound: Inbound, message_id: int | None, conversation_id: int) -> Message:
    return Message(
        id=message_id,
        clinic_id=inbound.clinic_id,
        conversation_id=conversation_id,
        direction=Direction.INBOUND,
        sender_type=SenderType.PATIENT,
        message_type=inbound.message_type,
        content=inbound.content,
        metadata=inbound.metadata,
        status=MessageStatus.DELIVERED,
        external_id=inbound.external_id,
        created_at=inbound.at,
        status_changed_at=inbound.at,
    )


def _message_params(inbound: Inbound) -> dict:
    return {
        "direction": Direction.INBOUND,
        "sender_type": SenderType.PATIENT,
        "message_type": inbound.message_type,
        "content": inbound.content,
        "metadata": orjson.dumps(inbound.metadata).decode(),
        "status": MessageStatus.DELIVERED,
        "external_id": inbound.external_id,
        "at": inbound.at,
    }


@dataclass
class Plan:
    """One statement that stores the message into the snapshot's conversation, and what it will tell."""

    inbound: Inbound
    snapshot: Snapshot
    sql: str
    params: dict
    data: dict
    now: datetime
    last_message_at: datetime


def _plan(inbound: Inbound, snapshot: Snapshot) -> Plan:
    """The message, the conversation's last activity, the clinic's seq and the event, in one statement
    that does nothing unless the patient and the conversation are as the snapshot has them. The message's
    id is the database's: the event's data gets it there, and the frame once the statement returns."""
    now = timezone.now()
    last = snapshot.last_message_at
    last_message_at = inbound.at if last is None or inbound.at > last else last
    data = {
        "message": wire.message_brief(_message(inbound, None, snapshot.conversation_id)),
        "contact": snapshot.patient,
    }
    events = [("message:new", snapshot.conversation_id, log.data_json(data))]
    with_id = "jsonb_set(%(event_data_0)s::jsonb, '{message,id}', to_jsonb((SELECT id FROM stored)))"
    sql = (
        "WITH unchanged AS ("
        f"SELECT v.id FROM {_table(Conversation)} v JOIN {_table(Contact)} c ON c.id = v.contact_id "
        "WHERE v.id = %(conversation_id)s AND v.updated_at = %(conversation_updated_at)s AND v.status <> %(resolved)s "
        "AND c.id = %(contact_id)s AND c.updated_at = %(contact_updated_at)s FOR UPDATE OF v), "
        f"stored AS (INSERT INTO {_table(Message)} ({MESSAGE_COLUMNS}) "
        f"SELECT {MESSAGE_VALUES.format(conversation='unchanged.id')} FROM unchanged "
        "ON CONFLICT (clinic_id, external_id) WHERE external_id IS NOT NULL DO NOTHING RETURNING id), "
        f"touched AS (UPDATE {_table(Conversation)} v SET last_message_at = %(last_message_at)s, "
        "updated_at = %(event_at)s FROM stored WHERE v.id = %(conversation_id)s RETURNING v.id), "
        f"{log.append_ctes('stored', data={0: with_id})} "
        "SELECT (SELECT id FROM stored), (SELECT max(seq) FROM logged)"
    )
    params = {
        **log.event_params(inbound.clinic_id, events, now),
        **_message_params(inbound),
        "conversation_id": snapshot.conversation_id,
        "conversation_updated_at": snapshot.conversation_updated_at,
        "resolved": Conversation.Status.RESOLVED,
        "contact_id": snapshot.patient_id,
        "contact_updated_at": snapshot.patient_updated_at,
        "last_message_at": last_message_at,
    }
    return Plan(inbound, snapshot, sql, params, data, now, last_message_at)


def _stored(plan: Plan, row: tuple) -> tuple[UsualResult, list] | None:
    """What the statement did: the result and the events to tell, or None (and the snapshot forgotten)
    when it stored nothing (the patient or the conversation changed, or a repeat)."""
    message_id, last_seq = row
    inbound, snapshot = plan.inbound, plan.snapshot
    if message_id is None:
        _remember(inbound.clinic_id, None, inbound.phone)
        return None
    plan.data["message"]["id"] = message_id
    now = plan.now
    _remember(
        inbound.clinic_id,
        Snapshot(**{**snapshot.__dict__, "conversation_updated_at": now, "last_message_at": plan.last_message_at}),
        inbound.phone,
    )
    events = [("message:new", snapshot.conversation_id, log.data_json(plan.data))]
    return UsualResult(message_id, snapshot.conversation_id), [(last_seq, events, now)]


def _into_conversation(inbound: Inbound, snapshot: Snapshot) -> UsualResult | None:
    plan = _plan(inbound, snapshot)
    with connection.cursor() as cursor:
        cursor.execute(plan.sql, plan.params)
        done = _stored(plan, cursor.fetchone())
    if done is None:
        return None
    result, ((last_seq, events, now),) = done
    return _told(inbound, events, last_seq, now, result.message_id, result.conversation_id)


async def areceive_usual_message(
    *,
    clinic_id: int,
    phone: str,
    whatsapp_user_id: str = "",
    whatsapp_parent_user_id: str = "",
    whatsapp_username: str = "",
    profile_name: str = "",
    message_type: str,
    content: str,
    metadata: dict,
    external_id: str,
    happened_at: datetime,
) -> UsualResult | None:
    """From the event loop: a patient this process knows writing into their open conversation, in one
    statement on the loop's own connections (realtime.db.execute). None for anything else, or when the
    statement stored nothing: the caller then goes the synchronous way (receive_usual_message, then the
    full action), which reads the patient again."""
    if not db.loop_statements():
        return None
    inbound = _checked(
        clinic_id,
        phone,
        whatsapp_user_id,
        whatsapp_parent_user_id,
        whatsapp_username,
        profile_name,
        message_type,
        content,
        metadata,
        external_id,
        happened_at,
    )
    snapshot = _snapshots.get((clinic_id, inbound.phone)) if inbound is not None else None
    if snapshot is None or not _fits(snapshot, inbound):
        return None
    plan = _plan(inbound, snapshot)
    done = _stored(plan, await db.execute(plan.sql, plan.params))
    if done is None:
        return None
    result, ((last_seq, events, now),) = done
    # The cached reads' bump is in Redis before the screens are told (a screen told of the message must not
    # then read the list without it); they do not wait for its answer.
    answered = await read_cache.abump_sent(
        read_cache.list_scope(clinic_id), read_cache.detail_scope(result.conversation_id)
    )
    log.committed(clinic_id, last_seq, events, now)
    await answered()
    return result


def _first_message(inbound: Inbound) -> UsualResult | None:
    """A patient the clinic has never heard from: the patient, the conversation and the message in one
    statement, and both events (conversation:new, message:new) as the full action tells them."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT "
            + ", ".join(
                f"nextval(pg_get_serial_sequence('{m._meta.db_table}', 'id'))" for m in (Contact, Conversation, Message)
            )
        )
        contact_id, conversation_id, message_id = cursor.fetchone()
    now = timezone.now()
    patient = Contact(
        id=contact_id,
        clinic_id=inbound.clinic_id,
        phone=inbound.phone,
        whatsapp_user_id=inbound.user_id,
        whatsapp_parent_user_id=inbound.parent_id,
        profile_name=inbound.profile_name,
        created_at=now,
        updated_at=now,
    )
    conversation = Conversation(
        id=conversation_id,
        clinic_id=inbound.clinic_id,
        contact=patient,
        last_message_at=inbound.at,
        created_at=now,
        updated_at=now,
    )
    message = _message(inbound, message_id, conversation_id)
    events = [
        ("conversation:new", conversation_id, log.data_json({"conversation": wire.conversation(conversation)})),
        ("message:new", conversation_id, _message_new(message, conversation)),
    ]
    sql = (
        f"WITH patient AS (INSERT INTO {_table(Contact)} (id, clinic_id, name, phone, whatsapp_user_id, "
        "whatsapp_parent_user_id, whatsapp_username, profile_name, email, status, created_at, updated_at) "
        "SELECT %(contact_id)s, %(clinic_id)s, '', %(phone)s, %(user_id)s, %(parent_id)s, '', %(profile_name)s, '', "
        "%(contact_status)s, %(event_at)s, %(event_at)s "
        f"WHERE NOT EXISTS (SELECT 1 FROM {_table(Message)} WHERE clinic_id = %(clinic_id)s "
        "AND external_id = %(external_id)s) ON CONFLICT DO NOTHING RETURNING id), "
        f"thread AS (INSERT INTO {_table(Conversation)} (id, clinic_id, contact_id, channel, status, assignee_id, "
        "last_message_at, created_at, updated_at) SELECT %(conversation_id)s, %(clinic_id)s, patient.id, %(channel)s, "
        "%(open)s, NULL, %(at)s, %(event_at)s, %(event_at)s FROM patient RETURNING id), "
        f"stored AS (INSERT INTO {_table(Message)} (id, {MESSAGE_COLUMNS}) "
        f"SELECT %(message_id)s, {MESSAGE_VALUES.format(conversation='thread.id')} FROM thread RETURNING id), "
        f"{log.append_ctes('stored', count=2)} "
        "SELECT (SELECT count(*) FROM stored), (SELECT max(seq) FROM logged)"
    )
    params = {
        **log.event_params(inbound.clinic_id, events, now),
        **_message_params(inbound),
        "message_id": message_id,
        "contact_id": contact_id,
        "phone": inbound.phone,
        "user_id": inbound.user_id,
        "parent_id": inbound.parent_id,
        "profile_name": inbound.profile_name,
        "contact_status": Contact.Status.ACTIVE,
        "conversation_id": conversation_id,
        "channel": Conversation.Channel.WHATSAPP,
        "open": Conversation.Status.OPEN,
    }
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        stored, last_seq = cursor.fetchone()
    if not stored:
        return None  # a concurrent delivery made the patient (or stored this message) first
    _remember(inbound.clinic_id, _snapshot(patient, conversation_id, now, inbound.at), inbound.phone)
    return _told(inbound, events, last_seq, now, message_id, conversation_id)


def _message_new(message: Message, conversation: Conversation) -> bytes:
    return log.data_json({"message": wire.message_brief(message), "contact": wire.patient_brief(conversation.contact)})


def _told(inbound: Inbound, events, last_seq: int, now, message_id: int, conversation_id: int) -> UsualResult:
    """After the commit: the cached reads first (a screen told of the message must not then read the list
    without it), then the events to every screen."""
    read_cache.bump(read_cache.list_scope(inbound.clinic_id), read_cache.detail_scope(conversation_id))
    log.committed(inbound.clinic_id, last_seq, events, now)
    return UsualResult(message_id, conversation_id)
