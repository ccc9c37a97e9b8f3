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


MODIFIERS = {"\ufe0f", "\u20e3"} | {chr(c) for c in range(0x1F3FB, 0x1F400)}  # presentation, keycap, skin tones
ZWJ = "\u200d"


def _one_symbol(part: str) -> bool:
    base = [char for char in part if char not in MODIFIERS]
    if len(base) == 2 and all(0x1F1E6 <= ord(char) <= 0x1F1FF for char in base):
        return True  # a flag: two regional indicators
    if len(base) == 1 and base[0] in "#*0123456789" and "\u20e3" in part:
        return True  # a keycap
    return len(base) == 1 and unicodedata.category(base[0]) == "So"


def is_emoji(text: str) -> bool:
    """One emoji (as WhatsApp takes in a reaction): one symbol with its modifiers, or several joined into one
    (👨‍⚕️) — no letters, digits, spaces, controls or other marks."""
    if not isinstance(text, str) or not 0 < len(text) <= MAX_EMOJI_CHARS:
        return False
    return all(part and _one_symbol(part) for part in text.split(ZWJ))


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
        Message.objects.select_for_update(no_key=True)
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
    message = Message.objects.select_for_update(no_key=True).get(pk=message.pk, conversation=conversation)
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
    if (held or {}).get("emoji", "") == emoji and (held or {}).get("status") != "failed":
        return message  # the same reaction again: nothing to send (a failed one is sent again)
    now = timezone.now().isoformat()
    _set(message, STAFF, {"emoji": emoji, "by": actor.pk, "at": now, "status": "pending"} if emoji else None)
    record_audit(clinic_id=conversation.clinic_id, actor=actor, action="message.reacted", obj=message, ip=ip)
    jobs.send_reaction(message.pk, emoji)
    return message


def still_wanted(message_id: int, emoji: str) -> bool:
    """Whether `emoji` is still the staff's reaction on the message ("": none), so a send queued before a
    later change does not overwrite it on the patient's phone."""
    message = Message.objects.filter(pk=message_id).only("metadata").first()
    held = ((message.metadata.get("reactions") or {}).get(STAFF) or {}) if message else {}
    return held.get("emoji", "") == emoji


@transaction.atomic
def record_reaction_sent(*, message_id: int, emoji: str, error: str = "") -> None:
    """The worker's outcome for the staff reaction it sent, if it is still the one shown."""
    message = Message.objects.select_for_update(no_key=True).filter(pk=message_id).first()
    held = ((message.metadata.get("reactions") or {}).get(STAFF)) if message else None
    if held is None or held.get("emoji") != emoji:
        return  # changed or taken back meanwhile: its own send says how that went
    _set(message, STAFF, {**held, "status": "failed" if error else "sent", "error": error})
