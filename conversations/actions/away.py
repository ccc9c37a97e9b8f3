"""The away message: a patient who writes while the clinic is closed gets the clinic's away message at once,
through the normal delivery path — once per closed period per conversation (the period is named by when it
ends, the clinic's next opening, and kept on the conversation, so neither another message nor a restart
sends it again), never when the clinic answered moments ago, and, in mode "staff", only in conversations
staff answer (the assistant answers the others itself)."""

import logging
from datetime import UTC, datetime, timedelta

from django.utils import timezone

from conversations import clinic_hours, events, jobs
from conversations.actions import reporting
from conversations.models import (
    AwayMode,
    Conversation,
    Direction,
    Message,
    MessageStatus,
    MessageType,
    SenderType,
)
from conversations.selectors import has_whatsapp_number

logger = logging.getLogger(__name__)
AUTO_REPLY = "away"  # metadata["auto_reply"] of the away message: "Resposta automática" in the timeline
# A message that reaches us this late (WhatsApp delivering a backlog) gets no away message: it is old news.
FRESH_FOR = timedelta(hours=1)
# The clinic (staff or the assistant) answered in this conversation this recently: it is attended.
ATTENDED_FOR = timedelta(minutes=10)
# The closed period of a clinic that never opens: there is one, and it never ends.
NEVER_OPENS = datetime(9999, 12, 31, tzinfo=UTC)


def send_away_message(conversation: Conversation, message: Message) -> Message | None:
    """After the patient's `message` is stored in `conversation` (locked, in the caller's transaction): send
    the away message if the clinic is closed and it is due. Returns it, or None."""
    if message.sender_type != SenderType.PATIENT or message.message_type == MessageType.SYSTEM:
        return None
    if message.metadata.keys() & {"reaction", "revoke"}:  # a 👍, a deletion: they ask for nothing
        return None
    if conversation.channel != Conversation.Channel.WHATSAPP:
        return None
    hours = clinic_hours.of(conversation.clinic_id)
    if hours.away_mode == AwayMode.OFF or not hours.away_message:
        return None
    if hours.away_mode == AwayMode.STAFF and conversation.answered_by != Conversation.AnsweredBy.STAFF:
        return None
    now = timezone.now()
    if now - message.created_at > FRESH_FOR or hours.is_open(now):
        return None
    period = hours.next_change(now) or NEVER_OPENS
    if conversation.away_sent_for == period:
        return None
    # Named by its end, a period is renamed when the hours change meanwhile: one sent since it began counts.
    since = hours.last_change(now)
    sent = conversation.messages.filter(metadata__auto_reply=AUTO_REPLY)
    if sent.filter(created_at__gte=since).exists() if since is not None else sent.exists():
        return None
    attended = conversation.messages.filter(
        direction=Direction.OUTBOUND,
        sender_type__in=(SenderType.PROFESSIONAL, SenderType.AI),
        created_at__gte=now - ATTENDED_FOR,
    )
    if attended.exists():
        return None
    if not has_whatsapp_number(conversation.clinic_id):
        logger.warning("clinic %s is closed but has no WhatsApp number: no away message", conversation.clinic_id)
        return None
    away = Message.objects.create(
        clinic_id=conversation.clinic_id,
        conversation=conversation,
        direction=Direction.OUTBOUND,
        sender_type=SenderType.SYSTEM,
        message_type=MessageType.TEXT,
        content=hours.away_message,
        metadata={"auto_reply": AUTO_REPLY},
        status=MessageStatus.PENDING,
        created_at=now,
        status_changed_at=now,
    )
    conversation.away_sent_for = period
    conversation.last_message_at = max(conversation.last_message_at or now, now)
    conversation.save(update_fields=["away_sent_for", "last_message_at"])
    reporting.auto_replied(conversation, now)
    jobs.deliver(away.pk)  # committed with the message, or neither
    events.publish_message_new(away, conversation)
    return away
