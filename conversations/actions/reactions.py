"""Reactions (WhatsApp's 👍 on a message), kept on the message reacted to — never a message of their own, so
they neither show as one nor count as unread. A patient's arrives from the webhook; staff react to a
patient's message and the worker sends it as WhatsApp's `reaction` type. The reacted message's metadata holds
each side's current reaction (`reactions`: {"patient": {...}, "staff": {...}}); every change is told to every
screen as `message:updated`."""

import logging
import unicodedata
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from conversations import events, jobs
from conversations.actions.audit import record_audit
from conversations.errors import InvalidInput, NotAMember, NoWhatsAppNumber, OutsideReplyWindow
from conversations.models import Contact, Conversation, Direction, Message
from conversations.selectors import has_whatsapp_number, is_member, reply_window_ends_at

logger = logging.getLogger(__name__)
PATIENT, STAFF = "patient", "staff"
MAX_EMOJI_CHARS = 16  # one emoji, with its skin tone and joiners


def is_emoji(text: str) -> bool:
    """One emoji (as WhatsApp takes in a reaction): symbols only — no letters, digits, spaces or controls."""
    if not isinstance(text, str) or not 0 < len(text) <= MAX_EMOJI_CHARS:
        return False
    categories = {unicodedata.category(char) for char in text}
    return bool(categories & {"So", "Sk"}) and not categories & {"Lu", "Ll", "Lt", "Lo", "Nd", "Zs", "Cc", "Cs"}


def _set(message: Message, side: str, reaction: dict | None) -> None:
    reactions = dict(message.metadata.get("reactions") or {})
    if reaction is None:
        reactions.pop(side, None)
    else:
        reactions[side] = reaction
    message.metadata = {**message.metadata, "reactions": reactions}
    if not reactions:
        message.metadata.pop("reactions")
    message.save(update_fields=["metadata"])
    events.publish_message_updated(message)


@transaction.atomic
def receive_reaction(
    *, clinic_id: int, contact: Contact, reacted: str, emoji: str, external_id: str | None, at: datetime
) -> Message | None:
    """The patient reacted (or, with no emoji, took their reaction back) to a message of theirs with the
    clinic. Returns the message reacted to, or None when the clinic does not have it (the caller keeps the
    reaction as a message then, so nothing is lost). A reaction older than the one held changes nothing."""
    message = (
        Message.objects.select_for_update()
        .filter(clinic_id=clinic_id, external_id=reacted, conversation__contact=contact)
        .first()
    )
    if message is None:
        return None
    held = (message.metadata.get("reactions") or {}).get(PATIENT)
    if held and held.get("at", "") > at.isoformat():
        return message  # delivered late: a newer reaction is already shown
    _set(message, PATIENT, {"emoji": emoji, "at": at.isoformat(), "id": external_id} if emoji else None)
    return message


@transaction.atomic
def react_to_message(
    *, conversation: Conversation, message: Message, actor: AbstractBaseUser, emoji: str, ip: str | None = None
) -> Message:
    """Staff react to a patient's message (`""` takes the reaction back); the worker sends it to WhatsApp.
    Only a patient's message WhatsApp knows can be reacted to, while the 24-hour window is open."""
    if not is_member(actor, conversation.clinic_id):
        raise NotAMember("Only staff of the conversation's clinic can react in it.")
    if emoji != "" and not is_emoji(emoji):
        raise InvalidInput('A reaction is one emoji (or "" to take it back).', field="emoji")
    message = Message.objects.select_for_update().get(pk=message.pk, conversation=conversation)
    if message.direction != Direction.INBOUND or not message.external_id:
        raise InvalidInput("Staff react only to a patient's message that came through WhatsApp.", field="message")
    if conversation.channel == Conversation.Channel.WHATSAPP:
        if not has_whatsapp_number(conversation.clinic_id):
            raise NoWhatsAppNumber()
        ends_at = reply_window_ends_at(conversation)
        if ends_at is None or timezone.now() >= ends_at:
            raise OutsideReplyWindow(
                "WhatsApp's 24-hour window has closed: a reaction would be refused. Nothing was sent."
            )
    held = (message.metadata.get("reactions") or {}).get(STAFF)
    if (held or {}).get("emoji", "") == emoji:
        return message  # the same reaction again: nothing to send
    now = timezone.now().isoformat()
    _set(message, STAFF, {"emoji": emoji, "by": actor.pk, "at": now, "status": "pending"} if emoji else None)
    record_audit(clinic_id=conversation.clinic_id, actor=actor, action="message.reacted", obj=message, ip=ip)
    jobs.send_reaction(message.pk, emoji)
    return message


@transaction.atomic
def record_reaction_sent(*, message_id: int, emoji: str, error: str = "") -> None:
    """The worker's outcome for the staff reaction it sent, if it is still the one shown."""
    message = Message.objects.select_for_update().filter(pk=message_id).first()
    held = ((message.metadata.get("reactions") or {}).get(STAFF)) if message else None
    if held is None or held.get("emoji") != emoji:
        return  # changed or taken back meanwhile: its own send says how that went
    _set(message, STAFF, {**held, "status": "failed" if error else "sent", "error": error})
