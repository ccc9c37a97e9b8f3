"""The usual inbound messages in a statement or three (DESIGN §10), on PostgreSQL, without the ORM: a
patient the clinic knows by phone writing into their open conversation (one statement; one read more when
this process has not seen the patient lately), and a new patient's first message (three).

These store such a message exactly as `receive_inbound_message` would (the same rows, the same events
and frames) and answer None for anything else — identifiers or a profile to record, a resolved
conversation to reopen, media to download, a quoted message, a username, a repeat — which the caller
then hands to the full action. Each write checks that what was read still holds (the conversation is
still the patient's open one and the patient unchanged, or nobody has the new patient's identifiers),
so a change in between, by this process or another, sends the message down the full path rather than
storing or publishing something stale. What was read of a patient is kept per process (`Snapshot`),
since the next message usually comes from the same patient.

One flow (`_flow`) says which statements to run; it runs on a database thread through Django's
connection (`receive_usual_message`), or on the event loop through its own connections
(`areceive_usual_message`, which the webhook's ASGI route uses).
"""

import functools
import threading
from collections import OrderedDict
from collections.abc import Generator
from dataclasses import dataclass
from datetime import datetime

import orjson
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection
from django.utils import timezone

from conversations import clinic_hours, jobs, push, read_cache, wire
from conversations.actions import inbound_statements as statements
from conversations.actions.contacts import usable_identifier, whatsapp_id_of
from conversations.actions.reporting import hour_of
from conversations.models import (
    AwayMode,
    Contact,
    Conversation,
    Direction,
    ErasedIdentifier,
    Message,
    MessageStatus,
    MessageType,
    SenderType,
)
from conversations.models.reports import ACTIVITY_SHARDS
from realtime import db, log

MEDIA_TYPES = {MessageType.IMAGE, MessageType.VIDEO, MessageType.AUDIO, MessageType.DOCUMENT, MessageType.STICKER}
# The types this path stores: read once (the enum's `values` builds its list again on every call).
USUAL_TYPES = frozenset(MessageType.values) - MEDIA_TYPES
SNAPSHOTS = 20_000  # patients whose open conversation a process remembers


@dataclass(frozen=True)
class Snapshot:
    """A patient and their open conversation, as this process last read them."""

    patient_id: int
    patient_updated_at: datetime
    phone: str
    whatsapp_id: str
    user_id: str
    parent_id: str
    profile_name: str
    conversation_id: int
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
    number_id: str = ""  # the clinic's WhatsApp number it came to: the thread's replies go from it
    whatsapp_id: str = ""  # the number as WhatsApp gave it (its wa_id): the patient's replies go there


@dataclass(frozen=True)
class Stored:
    """What a flow stored: the result, and the events to tell once committed (their last seq)."""

    result: UsualResult
    events: list[tuple[str, int | None, bytes]]
    last_seq: int
    at: datetime


Statement = tuple[str, dict, bool]  # SQL, parameters, whether every row is wanted (else the first)


def usual_inbound(
    *,
    clinic_id: int,
    phone: str,
    whatsapp_id: str = "",
    whatsapp_user_id: str = "",
    whatsapp_parent_user_id: str = "",
    whatsapp_username: str = "",
    profile_name: str = "",
    message_type: str,
    content: str,
    metadata: dict,
    external_id: str,
    happened_at: datetime,
    whatsapp_number_id: str = "",
) -> Inbound | None:
    """A patient's message, normalised for the fast path; None when it cannot be the usual case at all
    (media, a quoted message, a reaction, an edit or a deletion, a username, no usable phone), for the full
    action."""
    if message_type not in USUAL_TYPES or metadata.get("context"):
        return None
    if metadata.keys() & {"reaction", "edit", "revoke"}:  # they change another message: the full action knows
        return None
    if not external_id or timezone.is_naive(happened_at) or (whatsapp_username or "").strip().lstrip("@"):
        return None
    phone_ok = usable_identifier("phone", phone)
    user_ok = usable_identifier("whatsapp_user_id", whatsapp_user_id) if whatsapp_user_id else ""
    parent_ok = usable_identifier("whatsapp_parent_user_id", whatsapp_parent_user_id) if whatsapp_parent_user_id else ""
    if not phone_ok or (whatsapp_user_id and not user_ok) or (whatsapp_parent_user_id and not parent_ok):
        return None
    name = (profile_name or "").strip()[:200]
    return Inbound(
        clinic_id,
        phone_ok,
        user_ok,
        parent_ok,
        name,
        message_type,
        content or "",
        metadata,
        external_id,
        happened_at,
        whatsapp_number_id or "",
        whatsapp_id_of(whatsapp_id),
    )


def _fits(snapshot: Snapshot, inbound: Inbound) -> bool:
    """Whether the message adds nothing to record about the patient (found by phone, same ids and profile)."""
    return (
        snapshot.phone == inbound.phone
        and (not inbound.whatsapp_id or snapshot.whatsapp_id == inbound.whatsapp_id)
        and (not inbound.user_id or snapshot.user_id == inbound.user_id)
        and (not inbound.parent_id or snapshot.parent_id == inbound.parent_id)
        and (not inbound.profile_name or snapshot.profile_name == inbound.profile_name)
    )


def _flow(inbound: Inbound) -> Generator[Statement, tuple | list, Stored | None]:
    """The statements that store the message, each sent the previous one's result; returns what was stored,
    or None for the full action."""
    hours = clinic_hours.held(inbound.clinic_id)
    if hours is None:  # read once, then held (clinic_hours)
        sql, params = clinic_hours.statement(inbound.clinic_id)
        hours = clinic_hours.remember(inbound.clinic_id, (yield sql, params, False))
    if hours.away_mode != AwayMode.OFF and not hours.is_open(timezone.now()):
        return None  # the clinic is closed: its away message may be due, which the full action decides
    snapshot = _snapshots.get((inbound.clinic_id, inbound.phone))
    if snapshot is not None and _fits(snapshot, inbound):
        stored = yield from _into_conversation(inbound, snapshot)
        if stored is not None:
            return stored
        _remember(inbound.clinic_id, None, inbound.phone)  # changed elsewhere: read it again
    rows = yield _read(inbound)
    if len(rows) != 1:
        return None  # identifiers spread over two patients
    if rows[0][0] is None:
        return (yield from _first_message(inbound))
    patient = Contact(clinic_id=inbound.clinic_id, **dict(zip(statements.CONTACT_COLUMNS, rows[0][:-1], strict=True)))
    conversation_id = rows[0][-1]
    if conversation_id is None:
        return None  # no open conversation: one is reopened or made by the full action
    snapshot = _snapshot(patient, conversation_id)
    if not _fits(snapshot, inbound):
        return None  # found by user id only, or identifiers or a profile to record
    _remember(inbound.clinic_id, snapshot, inbound.phone)
    return (yield from _into_conversation(inbound, snapshot))


def _read(inbound: Inbound) -> Statement:
    """Every patient of the clinic any identifier names (or one empty row), each with the id of its open
    WhatsApp conversation."""
    params = {
        "clinic": inbound.clinic_id,
        "phone": inbound.phone,
        "user_id": inbound.user_id,
        "parent_id": inbound.parent_id,
        "channel": Conversation.Channel.WHATSAPP,
        "resolved": Conversation.Status.RESOLVED,
    }
    return statements.read_sql(), params, True


def _snapshot(patient: Contact, conversation_id: int) -> Snapshot:
    return Snapshot(
        patient_id=patient.pk,
        patient_updated_at=patient.updated_at,
        phone=patient.phone,
        whatsapp_id=patient.whatsapp_id,
        user_id=patient.whatsapp_user_id,
        parent_id=patient.whatsapp_parent_user_id,
        profile_name=patient.profile_name,
        conversation_id=conversation_id,
        patient=wire.patient_brief(patient),
    )


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


def _into_conversation(inbound: Inbound, snapshot: Snapshot) -> Generator[Statement, tuple, Stored | None]:
    """One statement: the message, the conversation's last activity, the clinic's seq and the event, doing
    nothing unless the conversation is still the patient's open one and the patient as the snapshot has
    them (the frame names them). Other messages written meanwhile, by any process, change nothing of that:
    the conversation's row is locked, and its last activity only moves forward. The message's id is the
    database's: the event's data gets it there, and the frame once the statement returns."""
    now = timezone.now()
    data = {
        "message": wire.message_brief(_message(inbound, None, snapshot.conversation_id)),
        "contact": snapshot.patient,
    }
    events = [("message:new", snapshot.conversation_id, log.data_json(data))]
    params = {
        **log.event_params(inbound.clinic_id, events, now),
        **_message_params(inbound),
        "conversation_id": snapshot.conversation_id,
        "resolved": Conversation.Status.RESOLVED,
        "contact_id": snapshot.patient_id,
        "contact_updated_at": snapshot.patient_updated_at,
        "number_id": inbound.number_id,
        **_counted_params(inbound, snapshot.conversation_id),
        **_erasure_digests(inbound),
    }
    message_id, last_seq = yield statements.into_conversation_sql(), params, False
    if message_id is None:
        return None  # changed since it was read, or a repeat: the full action decides
    data["message"]["id"] = message_id
    events = [("message:new", snapshot.conversation_id, log.data_json(data))]
    return Stored(UsualResult(message_id, snapshot.conversation_id), events, last_seq, now)


def _first_message(inbound: Inbound) -> Generator[Statement, tuple, Stored | None]:
    """A patient the clinic has never heard from: the patient, the conversation and the message in one
    statement (after one for their ids), and both events (conversation:new, message:new) as the full
    action tells them."""
    contact_id, conversation_id, message_id = yield statements.new_ids_sql(), {}, False
    now = timezone.now()
    patient = Contact(
        id=contact_id,
        clinic_id=inbound.clinic_id,
        phone=inbound.phone,
        whatsapp_id=inbound.whatsapp_id,
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
        awaiting_since=inbound.at,
        created_at=now,
        updated_at=now,
    )
    message = _message(inbound, message_id, conversation_id)
    events = [
        (
            "conversation:new",
            conversation_id,
            log.data_json({"conversation": wire.conversation(conversation, labels=[])}),
        ),
        (
            "message:new",
            conversation_id,
            log.data_json({"message": wire.message_brief(message), "contact": wire.patient_brief(patient)}),
        ),
    ]
    params = {
        **log.event_params(inbound.clinic_id, events, now),
        **_message_params(inbound),
        "message_id": message_id,
        "contact_id": contact_id,
        "phone": inbound.phone,
        "whatsapp_id": inbound.whatsapp_id,
        "user_id": inbound.user_id,
        "parent_id": inbound.parent_id,
        "profile_name": inbound.profile_name,
        "contact_status": Contact.Status.ACTIVE,
        "conversation_id": conversation_id,
        "channel": Conversation.Channel.WHATSAPP,
        "open": Conversation.Status.OPEN,
        "number_id": inbound.number_id,
        **_counted_params(inbound, conversation_id, opened=True),
        **_erasure_digests(inbound),
    }
    stored, last_seq = yield statements.first_message_sql(), params, False
    if not stored:
        return None  # a concurrent delivery made the patient (or stored this message) first
    _remember(inbound.clinic_id, _snapshot(patient, conversation_id), inbound.phone)
    return Stored(UsualResult(message_id, conversation_id), events, last_seq, now)


def _counted_params(inbound: Inbound, conversation_id: int, *, opened: bool = False) -> dict:
    """COUNTED's: the message's hour and shard, and whether it began an attendance (a new conversation)."""
    return {"hour": hour_of(inbound.at), "shard": conversation_id % ACTIVITY_SHARDS, "opened": int(opened)}


def _erasure_digests(inbound: Inbound) -> dict[str, list[str]]:
    """The marks an erasure would have left of this message's id and of who sent it (NOT_ERASED): a message
    they mark goes to the full action, which refuses an erased patient's old one."""
    identifiers = (inbound.phone, inbound.whatsapp_id, inbound.user_id, inbound.parent_id)
    keys = (settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS)
    return {
        "erased_messages": ErasedIdentifier.digests_of(ErasedIdentifier.Kind.MESSAGE, inbound.external_id),
        "erased_patients": list(_patient_digests(identifiers, keys)),
    }


@functools.lru_cache(maxsize=SNAPSHOTS)
def _patient_digests(identifiers: tuple[str, ...], keys: tuple[str, ...]) -> tuple[str, ...]:
    """A patient's marks, kept per process as their snapshot is (the same patient writes again; a mark is
    several HMACs). `keys` are the secrets they are made under, so that a rotation makes new ones."""
    return tuple(ErasedIdentifier.patient_digests(identifiers))


def receive_usual_message(inbound: Inbound) -> UsualResult | None:
    """Store a patient's message the fast way, through Django's connection; None when it is not the usual
    case (the caller then uses receive_inbound_message). Call outside any transaction: each statement must
    commit on its own, before its events are sent."""
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        return None
    flow = _flow(inbound)
    try:
        sql, params, every_row = next(flow)
        while True:
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
                answer = cursor.fetchall() if every_row else cursor.fetchone()
            sql, params, every_row = flow.send(answer)
    except StopIteration as finished:
        stored = finished.value
    if stored is None:
        return None
    # Cached reads first: a screen told of the message must not then read the list without it.
    read_cache.bump(read_cache.list_scope(inbound.clinic_id), read_cache.detail_scope(stored.result.conversation_id))
    log.committed(inbound.clinic_id, stored.last_seq, stored.events, stored.at)
    if push.wanted(inbound.clinic_id):
        jobs.push("message", stored.result.message_id)  # staff's devices, told by the worker
    return stored.result


async def areceive_usual_message(inbound: Inbound) -> UsualResult | None:
    """`receive_usual_message` from the event loop, on its own connections (realtime.db.execute): no
    hand-off to a thread and back. None where the loop has no connections (not PostgreSQL)."""
    if not db.loop_statements():
        return None
    flow = _flow(inbound)
    try:
        sql, params, every_row = next(flow)
        while True:
            sql, params, every_row = flow.send(await db.execute(sql, params, every_row=every_row))
    except StopIteration as finished:
        stored = finished.value
    if stored is None:
        return None
    # The cached reads' bump is in Redis before the screens are told (a screen told of the message must not
    # then read the list without it); they do not wait for its answer.
    conversation_id = stored.result.conversation_id
    answered = await read_cache.abump_sent(
        read_cache.list_scope(inbound.clinic_id), read_cache.detail_scope(conversation_id)
    )
    log.committed(inbound.clinic_id, stored.last_seq, stored.events, stored.at)
    await answered()
    if push.configured():
        wanted = push.held(inbound.clinic_id)
        if wanted is None:
            sql, params = push.statement(inbound.clinic_id)
            wanted = push.remember(inbound.clinic_id, await db.execute(sql, params, every_row=False))
        if wanted:  # staff's devices, told by the worker: queued from Django's thread
            await sync_to_async(jobs.push)("message", stored.result.message_id)
    return stored.result
