"""Actions on what reaches the clinic from outside: a patient's message, the assistant's, a reply the
clinic sent from the WhatsApp Business app, and WhatsApp's notices that a patient changed number or id."""

import logging
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from conversations import events, jobs, push, selectors
from conversations.actions import reporting
from conversations.actions.amendments import receive_edit, receive_revoke
from conversations.actions.away import send_away_message
from conversations.actions.contacts import (
    PatientIdentity,
    change_contact_identifiers,
    find_or_create_contact,
    usable_identifier,
)
from conversations.actions.locks import lock_external_id
from conversations.actions.messages import MEDIA_TYPES, apply_pending_statuses, touch_conversation
from conversations.actions.reactions import receive_reaction
from conversations.errors import ErasedPatient, InvalidInput
from conversations.models import (
    Clinic,
    Contact,
    Conversation,
    Direction,
    Message,
    MessageStatus,
    MessageType,
    Responder,
    SenderType,
)
from conversations.models.messages import ASKS_NOTHING
from conversations.models.reports import ACTIVITY_SHARDS

logger = logging.getLogger(__name__)
# Marks a message the clinic sent from the WhatsApp Business app on its phone (coexistence).
SENT_FROM_BUSINESS_APP = "whatsapp_business_app"


@dataclass(frozen=True)
class InboundResult:
    message: Message
    conversation: Conversation
    contact: Contact
    created: bool


def _thread_for(contact: Contact, channel: str) -> tuple[Conversation, str | None]:
    """The contact's thread on `channel`: the unresolved one, else the latest reopened, else a new one.

    Returns the conversation and what happened to it ("created", "reopened" or None). Call with the
    contact row locked.
    """
    threads = Conversation.objects.filter(clinic_id=contact.clinic_id, contact=contact, channel=channel)
    threads = threads.select_related("assignee")
    conversation, change = threads.exclude(status=Conversation.Status.RESOLVED).first(), None
    if conversation is None:
        conversation = threads.order_by("-last_message_at", "-id").first()
        if conversation is not None:
            conversation.status, change = Conversation.Status.OPEN, "reopened"
        else:
            conversation = Conversation.objects.create(clinic_id=contact.clinic_id, contact=contact, channel=channel)
            change = "created"
    conversation.contact = contact  # the locked row the caller holds, not another read of it
    return conversation, change


def _seen(clinic: Clinic, external_id: str | None) -> InboundResult | None:
    """The message already stored under this provider id (Meta delivers twice), or None."""
    if external_id is None:
        return None
    # Most deliveries are new: check with the cheapest query, load the message only for a repeat.
    seen = Message.objects.filter(clinic=clinic, external_id=external_id)
    if not seen.exists():
        return None
    existing = seen.select_related("conversation__contact", "conversation__assignee").first()
    return InboundResult(existing, existing.conversation, existing.conversation.contact, created=False)


def _checked(message_type: str, external_id: str | None, happened_at: datetime | None):
    if message_type not in MessageType.values:
        message_type = MessageType.UNSUPPORTED
    external_id = str(external_id).strip() if external_id not in (None, "") else None
    happened_at = happened_at or timezone.now()
    if timezone.is_naive(happened_at):
        raise InvalidInput("happened_at must carry a time zone.", field="timestamp")
    return message_type, external_id, happened_at


def _with_reply_link(clinic: Clinic, metadata: dict) -> dict:
    """Link a reply to the message it quotes (`context.id`), when the clinic has that message."""
    quoted = (metadata.get("context") or {}).get("id") if isinstance(metadata.get("context"), dict) else None
    if quoted:
        replied = Message.objects.filter(clinic=clinic, external_id=str(quoted)).values_list("pk", flat=True).first()
        if replied is not None:
            return {**metadata, "reply_to_message_id": replied}
    return metadata


def _publish_thread(conversation: Conversation, change: str | None, woken: bool = False) -> None:
    if change == "created":
        events.publish_conversation_new(conversation)
        return
    changed = (["status"] if change == "reopened" else []) + (["snoozed_until"] if woken else [])
    if changed:
        events.publish_conversation_updated(conversation, changed)


@transaction.atomic
def receive_inbound_message(
    *,
    clinic: Clinic,
    phone: str = "",
    whatsapp_id: str = "",
    whatsapp_user_id: str = "",
    whatsapp_parent_user_id: str = "",
    whatsapp_username: str = "",
    profile_name: str = "",
    contact_name: str = "",
    message_type: str = MessageType.TEXT,
    content: str = "",
    metadata: dict | None = None,
    external_id: str | None = None,
    happened_at: datetime | None = None,
    sender_type: str = SenderType.PATIENT,
    channel: str = Conversation.Channel.WHATSAPP,
    whatsapp_number_id: str = "",
) -> InboundResult:
    """Store a message that reached the clinic from outside (WhatsApp, or an automation on its behalf).

    The patient is found by phone, else by WhatsApp user id (a patient with a username may have no
    phone), and created if new; a resolved conversation is reopened. Idempotent on `external_id`: the
    same delivery twice returns the first message with created=False. A message from the AI assistant
    (`sender_type="ai"`) is stored as outbound and already sent.
    """
    if sender_type not in (SenderType.PATIENT, SenderType.AI):
        raise InvalidInput(f"sender_type must be patient or ai, not {sender_type!r}.", field="sender_type")
    message_type, external_id, happened_at = _checked(message_type, external_id, happened_at)
    identity = PatientIdentity.of(
        phone=phone,
        whatsapp_id=whatsapp_id,
        whatsapp_user_id=whatsapp_user_id,
        whatsapp_parent_user_id=whatsapp_parent_user_id,
        whatsapp_username=whatsapp_username,
        profile_name=profile_name,
    )
    from_patient = sender_type == SenderType.PATIENT
    reaction = (metadata or {}).get("reaction")
    if from_patient and isinstance(reaction, dict) and reaction.get("message_id"):
        reacted = _react(clinic, identity, reaction, external_id, happened_at)
        if reacted is not None:
            return reacted
    if from_patient and ("edit" in (metadata or {}) or "revoke" in (metadata or {})):
        amended = _amend(clinic, identity, metadata, content or "", external_id, happened_at)
        if amended is not None:
            return amended
    return _store(
        clinic=clinic,
        identity=identity,
        contact_name=contact_name,
        channel=channel,
        number_id=whatsapp_number_id,
        fields={
            "direction": Direction.INBOUND if from_patient else Direction.OUTBOUND,
            "sender_type": sender_type,
            "message_type": message_type,
            "content": content or "",
            "metadata": metadata or {},
            "status": MessageStatus.DELIVERED if from_patient else MessageStatus.SENT,
            "external_id": external_id,
            "created_at": happened_at,
        },
    )


def _store(
    *,
    clinic: Clinic,
    identity: PatientIdentity,
    fields: dict,
    contact_name: str = "",
    channel: str = Conversation.Channel.WHATSAPP,
    number_id: str = "",
) -> InboundResult:
    """Find the patient and their thread and store the message there, once per `external_id`; tells
    every screen. Call inside the action's transaction. `number_id`: the clinic's WhatsApp number it came
    to (or was sent from), which the thread's replies then go from."""
    external_id = fields["external_id"]
    # The usual case, a patient who wrote before, is one locking lookup and one check: the lock makes a
    # concurrent delivery of the same message commit first, so the check sees it.
    contact, _ = find_or_create_contact(clinic=clinic, identity=identity, name=contact_name, create=False)
    if (repeat := _seen(clinic, external_id)) is not None:
        return repeat  # checked before any patient is created: an old id must not recreate who has a new one
    _refuse_erased(clinic, identity, external_id, fields["created_at"])
    if contact is None:
        contact, created = find_or_create_contact(clinic=clinic, identity=identity, name=contact_name)
        if not created and (repeat := _seen(clinic, external_id)) is not None:
            return repeat  # a concurrent delivery created the patient and stored this message meanwhile
    conversation, change = _thread_for(contact, channel)
    if external_id is not None and fields["direction"] == Direction.OUTBOUND:
        lock_external_id(clinic.pk, external_id)  # a status of this echo arriving now waits for it
    message = Message.objects.create(
        clinic=clinic,
        conversation=conversation,
        **fields | {"metadata": _with_reply_link(clinic, fields["metadata"])},
        status_changed_at=fields["created_at"],
    )
    extra = ("status",) if change == "reopened" else ()
    woken = fields["sender_type"] == SenderType.PATIENT and conversation.snoozed_until is not None
    if woken:  # the patient wrote: a snoozed conversation is back at once
        conversation.snoozed_until = None
        extra += ("snoozed_until",)
    if number_id and conversation.whatsapp_number_id != number_id:
        conversation.whatsapp_number_id = number_id
        extra += ("whatsapp_number_id",)
    extra += tuple(_record_for_reports(conversation, change, message))
    touch_conversation(conversation, message.created_at, extra)
    _queue_media(message)
    _publish_thread(conversation, change, woken)
    events.publish_message_new(message, conversation)
    if external_id is not None and message.direction == Direction.OUTBOUND:
        message = apply_pending_statuses(message)  # statuses WhatsApp reported before we knew the id
    send_away_message(conversation, message)
    asks = not message.metadata.keys() & ASKS_NOTHING
    if message.sender_type == SenderType.PATIENT and asks and push.wanted(clinic.pk):
        jobs.push("message", message.pk)  # staff's devices are told by the worker, after the commit
    return InboundResult(message, conversation, contact, created=True)


def _react(
    clinic: Clinic, identity: PatientIdentity, reaction: dict, external_id: str | None, at: datetime
) -> InboundResult | None:
    """A patient's reaction goes on the message it reacts to (actions.reactions); None when the clinic does
    not have that message, and the reaction is then kept as a message of its own, as before."""
    _refuse_erased(clinic, identity, external_id, at)
    contact, _ = find_or_create_contact(clinic=clinic, identity=identity, create=False)
    if contact is None:
        return None
    emoji = reaction.get("emoji") if isinstance(reaction.get("emoji"), str) else ""
    reacted = receive_reaction(
        clinic_id=clinic.pk,
        contact=contact,
        reacted=str(reaction["message_id"]),
        emoji=emoji,
        external_id=external_id,
        at=at,
    )
    if reacted is None:
        return None
    return InboundResult(reacted, reacted.conversation, contact, created=False)


def _amend(
    clinic: Clinic, identity: PatientIdentity, metadata: dict, content: str, external_id: str | None, at: datetime
) -> InboundResult | None:
    """A patient's edit or deletion goes on the message it changes (actions.amendments); None when the
    clinic does not have that message, and the notification is then kept as a message of its own."""
    change = metadata.get("edit") or metadata.get("revoke")
    if not isinstance(change, dict) or not change.get("original_message_id"):
        return None
    _refuse_erased(clinic, identity, external_id, at)
    contact, _ = find_or_create_contact(clinic=clinic, identity=identity, create=False)
    if contact is None:
        return None
    original = str(change["original_message_id"])
    if "edit" in metadata:
        changed = receive_edit(
            clinic_id=clinic.pk, contact=contact, original=original, content=content, external_id=external_id, at=at
        )
    else:
        changed = receive_revoke(clinic_id=clinic.pk, contact=contact, original=original, at=at)
    if changed is None:
        return None
    return InboundResult(changed, changed.conversation, contact, created=False)


def _record_for_reports(conversation: Conversation, change: str | None, message: Message) -> list[str]:
    """The reports' facts of this message (an attendance opened, the patient waiting, the clinic answering);
    returns the conversation's fields they changed."""
    at = message.created_at
    if change is not None:
        reporting.opened(conversation, at)
    if message.sender_type == SenderType.PATIENT:
        asks = not message.metadata.keys() & ASKS_NOTHING  # a 👍 to the clinic's answer asks for nothing
        reporting.patient_wrote(conversation, at, shard=conversation.pk % ACTIVITY_SHARDS, awaits=asks)
        return []
    by = Responder.ASSISTANT if message.sender_type == SenderType.AI else Responder.STAFF
    return reporting.replied(conversation, at, by=by, user_id=None)


def _refuse_erased(clinic: Clinic, identity: PatientIdentity, external_id: str | None, at: datetime) -> None:
    """An erased patient's old notification, delivered again, is refused: it must not bring them back."""
    identifiers = (identity.phone, identity.whatsapp_id, identity.whatsapp_user_id, identity.whatsapp_parent_user_id)
    if selectors.was_erased(clinic.pk, external_id=external_id, identifiers=identifiers, happened_at=at):
        raise ErasedPatient("This is a notification about a patient who was erased (LGPD); it is not kept.")


def _queue_media(message: Message) -> None:
    if message.metadata.get("media_id") and message.message_type in MEDIA_TYPES:
        # In the caller's transaction: stored media messages always have their download queued.
        jobs.download_media(message.pk)


@transaction.atomic
def record_business_app_echo(
    *,
    clinic: Clinic,
    phone: str = "",
    whatsapp_id: str = "",
    whatsapp_user_id: str = "",
    whatsapp_parent_user_id: str = "",
    whatsapp_username: str = "",
    message_type: str = MessageType.TEXT,
    content: str = "",
    metadata: dict | None = None,
    external_id: str,
    happened_at: datetime | None = None,
    whatsapp_number_id: str = "",
) -> InboundResult:
    """Store what the clinic sent the patient from the WhatsApp Business app on its phone (an echo).

    It is outbound and already with WhatsApp: never queued for delivery, so never sent twice; later
    statuses apply to it by its id. Idempotent on `external_id`.
    """
    message_type, external_id, happened_at = _checked(message_type, external_id, happened_at)
    if external_id is None:
        raise InvalidInput("An echo needs WhatsApp's message id.", field="id")
    identity = PatientIdentity.of(
        phone=phone,
        whatsapp_id=whatsapp_id,
        whatsapp_user_id=whatsapp_user_id,
        whatsapp_parent_user_id=whatsapp_parent_user_id,
        whatsapp_username=whatsapp_username,
    )
    return _store(
        clinic=clinic,
        identity=identity,
        number_id=whatsapp_number_id,
        fields={
            "direction": Direction.OUTBOUND,
            "sender_type": SenderType.PROFESSIONAL,
            "message_type": message_type,
            "content": content or "",
            "metadata": {**(metadata or {}), "sent_from": SENT_FROM_BUSINESS_APP},
            "status": MessageStatus.SENT,
            "external_id": external_id,
            "created_at": happened_at,
        },
    )


@transaction.atomic
def record_identity_change(
    *,
    clinic: Clinic,
    kind: str,
    text: str,
    external_id: str,
    happened_at: datetime | None = None,
    old_phone: str = "",
    old_user_ids: tuple[str, ...] = (),
    new_phone: str = "",
    new_user_id: str = "",
    new_parent_user_id: str = "",
    metadata: dict | None = None,
) -> InboundResult:
    """WhatsApp's notice that a patient changed number (`user_changed_number`) or user id
    (`user_changed_user_id`): the same patient keeps its history and open conversation under the new
    identifiers, and the timeline shows a system line (never unread, never the list's preview).

    Idempotent on `external_id`. New identifiers another patient already holds are not taken, none of
    them (logged): the patient is never left half-moved.
    """
    _, external_id, happened_at = _checked(MessageType.SYSTEM, external_id, happened_at)
    if external_id is None:
        raise InvalidInput("A system message needs WhatsApp's message id.", field="id")
    if (repeat := _seen(clinic, external_id)) is not None:
        return repeat
    old = PatientIdentity(phone=old_phone, whatsapp_user_id=next(iter(u for u in old_user_ids if u), ""))
    _refuse_erased(clinic, old, external_id, happened_at)
    contact = _patient_of_change(clinic, old_phone, old_user_ids, new_phone, new_user_id, new_parent_user_id)
    if (repeat := _seen(clinic, external_id)) is not None:
        return repeat  # the same notice, delivered twice at once, committed while we waited for the lock
    new = {"phone": new_phone, "whatsapp_user_id": new_user_id, "whatsapp_parent_user_id": new_parent_user_id}
    contact, changed = change_contact_identifiers(contact=contact, new=new)
    conversation, created = _current_thread(contact)
    message = Message.objects.create(
        clinic=clinic,
        conversation=conversation,
        direction=Direction.INBOUND,
        sender_type=SenderType.SYSTEM,
        message_type=MessageType.SYSTEM,
        content=text,
        metadata={**(metadata or {}), "identity_change": kind, "changed": changed},
        status=MessageStatus.DELIVERED,
        external_id=external_id,
        created_at=happened_at,
        status_changed_at=happened_at,
    )
    if created:
        events.publish_conversation_new(conversation)
    elif changed:
        events.publish_conversation_updated(conversation, ["contact"])
    events.publish_message_new(message, conversation)
    return InboundResult(message, conversation, contact, created=True)


def _patient_of_change(
    clinic: Clinic, old_phone: str, old_user_ids: tuple[str, ...], new_phone: str, new_user_id: str, new_parent: str
) -> Contact:
    """The patient a change notice is about, locked: found by the old identifiers first, then by the new
    ones (an earlier message may have taught them); created under the new ones if the clinic never knew
    them."""
    user_ids = tuple(dict.fromkeys(u for u in (*old_user_ids, new_user_id) if u))
    candidates = [("phone", old_phone), *(("whatsapp_user_id", u) for u in user_ids), ("phone", new_phone)]
    for key, value in candidates:
        value = usable_identifier(key, value) if value else ""
        if not value:
            continue
        found = Contact.objects.select_for_update(no_key=True).filter(clinic=clinic, **{key: value}).first()
        if found is not None:
            return found
    identity = PatientIdentity.of(
        phone=new_phone or old_phone,
        whatsapp_id=new_phone or old_phone,
        whatsapp_user_id=new_user_id or next(iter(user_ids), ""),
        whatsapp_parent_user_id=new_parent,
    )
    return find_or_create_contact(clinic=clinic, identity=identity)[0]


def _current_thread(contact: Contact) -> tuple[Conversation, bool]:
    """Where a notice about the patient goes: the open thread, else the latest; it reopens none (it is
    news, not a message). Returns the thread and whether it had to be created."""
    threads = Conversation.objects.filter(
        clinic_id=contact.clinic_id, contact=contact, channel=Conversation.Channel.WHATSAPP
    )
    conversation = threads.exclude(status=Conversation.Status.RESOLVED).first()
    conversation = conversation or threads.order_by("-last_message_at", "-id").first()
    created = conversation is None
    if created:
        conversation = Conversation.objects.create(clinic_id=contact.clinic_id, contact=contact)
    conversation.contact = contact
    return conversation, created
