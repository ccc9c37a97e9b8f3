"""Actions on messages the clinic sends, and on every message's status and read marks."""

import logging
import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.files import File
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.utils import timezone

from conversations import events, jobs
from conversations.actions import reporting
from conversations.actions.audit import record_audit
from conversations.actions.locks import lock_conversation, lock_external_id
from conversations.errors import (
    InvalidInput,
    NotAMember,
    NoWhatsAppNumber,
    OutsideReplyWindow,
    StorageFailed,
    WrongClinic,
)
from conversations.media import SNIFF_BYTES, content_type_of, message_type_for
from conversations.message_templates import Template
from conversations.models import (
    Conversation,
    Direction,
    Message,
    MessageAttachment,
    MessageStatus,
    MessageType,
    PendingStatus,
    ReadMarker,
    Responder,
    SenderType,
)
from conversations.questions import checked_question
from conversations.selectors import has_real_channel, has_whatsapp_number, is_member, reply_window_ends_at
from conversations.voice import duration_seconds, is_ogg_opus

MEDIA_TYPES = (MessageType.IMAGE, MessageType.VIDEO, MessageType.AUDIO, MessageType.DOCUMENT, MessageType.STICKER)
# WhatsApp refuses text bodies longer than this.
MAX_TEXT_LENGTH = 4096
STATUS_RANK = {
    MessageStatus.PENDING: 0,
    MessageStatus.UNKNOWN: 0,  # between pending and sent: WhatsApp may or may not have it
    MessageStatus.SENT: 1,
    MessageStatus.DELIVERED: 2,
    MessageStatus.READ: 3,
}

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class OutboundResult:
    message: Message
    created: bool


def touch_conversation(conversation: Conversation, at: datetime, extra_fields: tuple[str, ...] = ()) -> None:
    """Move the conversation's last activity forward (never back: deliveries arrive out of order)."""
    if conversation.last_message_at is None or at > conversation.last_message_at:
        conversation.last_message_at = at
    conversation.updated_at = timezone.now()
    conversation.save(update_fields=["last_message_at", "updated_at", *extra_fields])


@transaction.atomic
def send_outbound_message(
    *,
    conversation: Conversation,
    sender: AbstractBaseUser,
    content: str,
    client_id: uuid.UUID | None = None,
    message_type: str = MessageType.TEXT,
    metadata: dict | None = None,
    attachment: UploadedFile | None = None,
    reply_to: int | None = None,
    buttons: list | None = None,
    options: dict | None = None,
    voice: bool = False,
    ip: str | None = None,
) -> OutboundResult:
    """Store a message a staff member sends to the patient, as pending until the provider takes it.

    With an `attachment` the message type follows the file's (its text is the caption). `reply_to`: a
    message of the conversation to quote — WhatsApp shows the quote above the reply, so it must know that
    message (it has a WhatsApp id). Idempotent on `client_id`: the same id twice in one conversation
    returns the first message.
    """
    if not is_member(sender, conversation.clinic_id):
        raise NotAMember("Only staff of the conversation's clinic can send in it.")
    content = (content or "").strip()
    content_type = None
    if attachment is not None:
        content_type, message_type = _kind_of(attachment)
    if message_type == MessageType.TEXT and not content:
        raise InvalidInput("A text message needs some content.", field="content")
    if content and message_type in (MessageType.AUDIO, MessageType.STICKER):
        raise InvalidInput(
            "WhatsApp shows no text with an audio or a sticker: send the text as a message of its own.",
            field="content",
        )
    if voice:
        metadata = {**(metadata or {}), **_voice_note(attachment, message_type)}
    question = checked_question(content=content, buttons=buttons, options=options)
    if question is not None:
        if attachment is not None:
            raise InvalidInput("A question with options carries no file.", field="file")
        metadata = {**(metadata or {}), "question": question}
    if len(content) > MAX_TEXT_LENGTH:
        raise InvalidInput(f"A message holds at most {MAX_TEXT_LENGTH} characters.", field="content")
    if message_type not in MessageType.values or message_type in (MessageType.UNSUPPORTED, MessageType.TEMPLATE):
        raise InvalidInput(f"{message_type!r} cannot be sent.", field="message_type")

    conversation = lock_conversation(conversation)
    if client_id is not None:
        existing = conversation.messages.filter(client_id=client_id).first()
        if existing is not None:
            return OutboundResult(existing, created=False)
    if reply_to is not None:
        metadata = {**(metadata or {}), **_quoting(conversation, reply_to)}
    files = []
    if attachment is not None:
        files = [
            {
                "file": attachment,
                "file_name": attachment.name[-255:],
                "content_type": content_type,
                "size": attachment.size,
            }
        ]
    message = _queue_outbound(
        conversation=conversation,
        sender=sender,
        message_type=message_type,
        content=content,
        metadata=metadata or {},
        client_id=client_id,
        files=files,
        audit=("message.sent", ip),
    )
    return OutboundResult(message, created=True)


def _kind_of(file: UploadedFile) -> tuple[str, str]:
    """(content type, message type) of an upload, from its bytes, within WhatsApp's limits for that kind."""
    file.seek(0)
    content_type = content_type_of(file.read(SNIFF_BYTES), getattr(file, "content_type", None))
    file.seek(0)
    try:
        return content_type, message_type_for(content_type, file.size)
    except ValueError as refused:
        raise InvalidInput(str(refused), field="file") from None


def _voice_note(attachment: UploadedFile | None, message_type: str) -> dict:
    """A voice note's metadata: it must be an OGG/Opus recording (what WhatsApp plays as a voice note)."""
    if attachment is None or message_type != MessageType.AUDIO:
        raise InvalidInput("A voice note is a recorded audio file.", field="voice")
    attachment.seek(0)
    content = attachment.read()
    attachment.seek(0)
    if not is_ogg_opus(content[:128]):
        raise InvalidInput("WhatsApp plays as voice notes only OGG files with the Opus codec.", field="voice")
    return {"voice": True, "duration_seconds": duration_seconds(content)}


def _header_files(template: Template, header_file: UploadedFile | None) -> list[dict]:
    """The file a template's media header is sent with: required for one, refused for any other, of the kind
    the template was approved for and within WhatsApp's limits for it."""
    kind = template.header_media
    if kind is None:
        if header_file is not None:
            raise InvalidInput("This template's header takes no file.", field="file")
        return []
    if header_file is None:
        raise InvalidInput(f"This template's header is a file ({kind}): choose one.", field="file")
    content_type, found = _kind_of(header_file)
    if found != kind:
        raise InvalidInput(f"This template's header takes a {kind}, not a {found}.", field="file")
    return [
        {
            "file": header_file,
            "file_name": header_file.name[-255:],
            "content_type": content_type,
            "size": header_file.size,
        }
    ]


def _quoting(conversation: Conversation, message_id: int) -> dict:
    """The metadata of a reply that quotes `message_id`: WhatsApp's context (its id for the message) and the
    link the timeline draws, as a patient's quoted reply has them."""
    quoted = conversation.messages.filter(pk=message_id).exclude(message_type=MessageType.SYSTEM).first()
    if quoted is None:
        raise InvalidInput("There is no such message in this conversation to quote.", field="reply_to")
    if not quoted.external_id:
        raise InvalidInput(
            "WhatsApp does not know that message yet (it was not sent, or did not come through WhatsApp): "
            "it cannot be quoted.",
            field="reply_to",
        )
    return {"context": {"id": quoted.external_id}, "reply_to_message_id": quoted.pk}


def _queue_outbound(
    *,
    conversation: Conversation,
    sender: AbstractBaseUser,
    message_type: str,
    content: str,
    metadata: dict,
    client_id: uuid.UUID | None,
    files: list[dict],
    audit: tuple[str, str | None],
) -> Message:
    """Store a pending outbound message with its files and queue its delivery. Call with the
    conversation row locked, inside the transaction that commits them together. Anything but an approved
    template needs WhatsApp's window open (the patient wrote within REPLY_WINDOW_HOURS)."""
    now = timezone.now()
    if conversation.channel == Conversation.Channel.WHATSAPP and not has_whatsapp_number(conversation.clinic_id):
        raise NoWhatsAppNumber()
    if message_type != MessageType.TEMPLATE and conversation.channel == Conversation.Channel.WHATSAPP:
        ends_at = reply_window_ends_at(conversation)
        if ends_at is None or now >= ends_at:
            raise OutsideReplyWindow(
                "WhatsApp's 24-hour window to answer freely has closed (the patient last wrote over "
                f"{settings.REPLY_WINDOW_HOURS} hours ago, or never): send one of the clinic's approved "
                "templates instead. Nothing was sent."
                if ends_at is not None
                else "The patient has not written in this conversation yet: WhatsApp only accepts one of the "
                "clinic's approved templates to start it. Nothing was sent."
            )
    message = Message.objects.create(
        clinic_id=conversation.clinic_id,
        conversation=conversation,
        direction=Direction.OUTBOUND,
        sender_type=SenderType.PROFESSIONAL,
        sender=sender,
        message_type=message_type,
        content=content,
        metadata=metadata,
        status=MessageStatus.PENDING,
        client_id=client_id,
        created_at=now,
        status_changed_at=now,
    )
    for file in files:
        try:
            MessageAttachment.objects.create(message=message, **file)
        except OSError as failed:  # the transaction rolls back: no message, no file
            logger.error("storing %s for conversation %s failed: %r", file["file_name"], conversation.pk, failed)
            raise StorageFailed(
                "The file could not be stored (the server's storage failed); nothing was sent. Try again shortly."
            ) from None
    changed = []
    if conversation.status == Conversation.Status.RESOLVED:
        conversation.status = Conversation.Status.OPEN
        changed.append("status")
        reporting.opened(conversation, now)
    if conversation.answered_by != Conversation.AnsweredBy.STAFF:
        conversation.answered_by = Conversation.AnsweredBy.STAFF  # staff replied: the assistant pauses
        changed.append("answered_by")
    action, ip = audit
    saved = []
    if action != "message.resent":  # a resend is the same reply, counted once
        saved = reporting.replied(conversation, now, by=Responder.STAFF, user_id=sender.pk)
    touch_conversation(conversation, now, (*changed, *saved))
    record_audit(clinic_id=conversation.clinic_id, actor=sender, action=action, obj=message, ip=ip)
    # In this transaction: the message and its delivery task are committed together or not at all.
    jobs.deliver(message.pk)
    if changed:
        events.publish_conversation_updated(conversation, changed)
    events.publish_message_new(message, conversation)
    return message


@transaction.atomic
def send_template_message(
    *,
    conversation: Conversation,
    sender: AbstractBaseUser,
    template: Template,
    variables: dict,
    header: dict | None = None,
    button_parameters: dict | None = None,
    header_file: UploadedFile | None = None,
    client_id: uuid.UUID | None = None,
    ip: str | None = None,
) -> OutboundResult:
    """Send one of the clinic's approved templates with its variables filled (any of them blank stops it,
    saying which): what WhatsApp accepts once the 24-hour window has closed. A template with a header takes
    its text variables (`header`) or its file (`header_file`: the image, document or video it was approved
    for); its buttons take a URL's suffix or a quick reply's payload (`button_parameters`, by button index).
    Idempotent on `client_id`."""
    if not is_member(sender, conversation.clinic_id):
        raise NotAMember("Only staff of the conversation's clinic can send in it.")
    if template.unsupported:
        raise InvalidInput(
            f"This template has {template.unsupported}, which this inbox cannot fill yet: WhatsApp would refuse it.",
            field="template",
        )
    content = template.render(variables)
    header_text = template.render_header(header or {})
    buttons = template.button_values(button_parameters or {})
    files = _header_files(template, header_file)
    conversation = lock_conversation(conversation)
    if client_id is not None:
        existing = conversation.messages.filter(client_id=client_id).first()
        if existing is not None:
            return OutboundResult(existing, created=False)
    sent = {
        "name": template.name,
        "language": template.language,
        "variables": {k: str(v).strip() for k, v in variables.items()},
    }
    if template.header:
        sent["header"] = {"format": template.header.get("format", ""), "text": header_text}
        if template.header_variables:
            sent["header"]["variables"] = {k: str(v).strip() for k, v in (header or {}).items()}
    if template.footer:
        sent["footer"] = template.footer
    if template.buttons:
        sent["buttons"] = [b.get("text", "") for b in template.buttons]
        sent["button_parameters"] = buttons
    message = _queue_outbound(
        conversation=conversation,
        sender=sender,
        message_type=MessageType.TEMPLATE,
        content=content,
        metadata={"template": sent},
        client_id=client_id,
        files=files,
        audit=("message.sent", ip),
    )
    return OutboundResult(message, created=True)


@transaction.atomic
def resend_failed_message(
    *, message: Message, sender: AbstractBaseUser, client_id: uuid.UUID | None = None, ip: str | None = None
) -> OutboundResult:
    """Send a failed message, or one whose delivery is unknown (a person decides), again as a new one
    (the first stays, with its reason); same text, and a copy of each file, so that purging either leaves
    the other's. Idempotent on `client_id`, so a double click resends once."""
    if not is_member(sender, message.clinic_id):
        raise NotAMember("Only staff of the conversation's clinic can resend in it.")
    if message.direction != Direction.OUTBOUND or message.sender_type != SenderType.PROFESSIONAL:
        raise InvalidInput("Only a message the clinic's staff sent can be resent.", field="message_id")
    if message.status not in (MessageStatus.FAILED, MessageStatus.UNKNOWN):
        raise InvalidInput(
            "Only a failed message, or one whose delivery is unknown, can be resent.", field="message_id"
        )
    conversation = lock_conversation(message.conversation)
    if client_id is not None:
        existing = conversation.messages.filter(client_id=client_id).first()
        if existing is not None:
            return OutboundResult(existing, created=False)
    # Locked: two screens resending the same failure at once make one new message, not two.
    message = Message.objects.select_for_update(no_key=True).get(pk=message.pk)
    if message.metadata.get("resent_as"):
        raise InvalidInput("This message was resent already.", field="message_id")
    with ExitStack() as opened:
        try:
            files = [
                {
                    "file": File(opened.enter_context(a.file.open("rb")), name=a.file_name),
                    "file_name": a.file_name,
                    "content_type": a.content_type,
                    "size": a.size,
                }
                for a in message.attachments.all()
            ]
        except OSError as missing:
            logger.error("resending message %s: its file cannot be read: %r", message.pk, missing)
            raise StorageFailed("The file of this message cannot be read any more; nothing was sent.") from None
        resent = _queue_outbound(
            conversation=conversation,
            sender=sender,
            message_type=message.message_type,
            content=message.content,
            metadata={k: v for k, v in {**message.metadata, "resent_from": message.pk}.items() if k != "resent_as"},
            client_id=client_id,
            files=files,
            audit=("message.resent", ip),
        )
    message.metadata = {**message.metadata, "resent_as": resent.pk}
    message.save(update_fields=["metadata"])
    events.publish_message_updated(message)  # every screen hides its resend button
    return OutboundResult(resent, created=True)


def status_may_move(current: str, new: str) -> bool:
    """Statuses only move forward (pending < sent < delivered < read); failed only from pending, unknown or
    sent; unknown only from pending (a send whose answer never came), and then WhatsApp's word settles it."""
    if current == MessageStatus.FAILED:
        return False
    if new == MessageStatus.FAILED:
        return current in (MessageStatus.PENDING, MessageStatus.UNKNOWN, MessageStatus.SENT)
    if new == MessageStatus.UNKNOWN:
        return current == MessageStatus.PENDING
    return STATUS_RANK[new] > STATUS_RANK[current]


@transaction.atomic
def update_message_status(
    *, message: Message, status: str, error: str = "", at: datetime | None = None, external_id: str | None = None
) -> tuple[Message, bool]:
    """Move a message's status forward; a late or repeated status is ignored and returns changed=False.

    `external_id` records the provider's id when it is first learnt (on `sent`, or from the first status
    WhatsApp reports of a message whose send's answer never came).
    """
    if status not in MessageStatus.values:
        raise InvalidInput(f"{status!r} is not a message status.", field="status")
    # Locked so two statuses arriving at once are compared one after the other.
    message = Message.objects.select_for_update(no_key=True).get(pk=message.pk)
    if not status_may_move(message.status, status):
        return message, False
    message.status = status
    message.error = error if status in (MessageStatus.FAILED, MessageStatus.UNKNOWN) else ""
    message.status_changed_at = at or timezone.now()
    fields = ["status", "error", "status_changed_at"]
    if external_id and not message.external_id and not message.metadata.get("erased"):
        lock_external_id(message.clinic_id, external_id)  # statuses arriving now wait for this commit
        message.external_id = external_id
        fields.append("external_id")
    try:
        with transaction.atomic():
            message.save(update_fields=fields)
    except IntegrityError:
        raise InvalidInput(
            f"Another message of the clinic already has external id {external_id}.", field="external_id"
        ) from None
    events.publish_message_status(message)
    if "external_id" in fields:
        message = apply_pending_statuses(message)
    return message, True


def apply_pending_statuses(message: Message) -> Message:
    """Statuses the provider reported before this message's id was known, applied in order now."""
    pending = list(PendingStatus.objects.filter(clinic_id=message.clinic_id, external_id=message.external_id))
    for early in sorted(pending, key=lambda p: (STATUS_RANK.get(p.status, 9), p.happened_at)):
        message, _ = update_message_status(
            message=message, status=early.status, error=early.error, at=early.happened_at
        )
    PendingStatus.objects.filter(pk__in=[p.pk for p in pending]).delete()
    return message


@transaction.atomic
def mark_read(*, user: AbstractBaseUser, conversation: Conversation, message: Message) -> tuple[ReadMarker, bool]:
    """Record that `user` has read `conversation` up to `message`; a marker never moves back."""
    if not is_member(user, conversation.clinic_id):
        raise NotAMember("Only staff of the conversation's clinic can read it.")
    if message.conversation_id != conversation.pk:
        raise WrongClinic("That message is not in this conversation.", field="message_id")
    marker, _ = ReadMarker.objects.get_or_create(user=user, conversation=conversation)
    # Locked so two screens of one user marking at once cannot move the marker back.
    marker = ReadMarker.objects.select_for_update().get(pk=marker.pk)
    if marker.last_read_message_id is not None and marker.last_read_message_id >= message.pk:
        return marker, False
    marker.last_read_message = message
    marker.updated_at = timezone.now()
    marker.save(update_fields=["last_read_message", "updated_at"])
    events.publish_message_read(
        clinic_id=conversation.clinic_id, conversation_id=conversation.pk, user_id=user.pk, message_id=message.pk
    )
    _send_read_receipt(conversation, up_to=message)
    return marker, True


@transaction.atomic
def mark_unread(*, user: AbstractBaseUser, conversation: Conversation) -> ReadMarker:
    """Mark the conversation unread again for `user` alone: their marker moves back to just before the
    patient's latest message, which counts as unread for them again (a marker further back stays where it
    is). Colleagues' marks are left alone."""
    if not is_member(user, conversation.clinic_id):
        raise NotAMember("Only staff of the conversation's clinic can mark it unread.")
    latest = (
        conversation.messages.filter(direction=Direction.INBOUND, sender_type=SenderType.PATIENT)
        .order_by("-id")
        .values_list("pk", flat=True)
        .first()
    )
    if latest is None:
        raise InvalidInput("The patient has not written in this conversation: nothing can be unread.")
    before = conversation.messages.filter(id__lt=latest).order_by("-id").values_list("pk", flat=True).first()
    marker, _ = ReadMarker.objects.get_or_create(user=user, conversation=conversation)
    marker = ReadMarker.objects.select_for_update().get(pk=marker.pk)
    read_to = marker.last_read_message_id
    if read_to is None or (before is not None and read_to <= before):
        return marker  # unread already, from further back: moving it would mark messages read
    marker.last_read_message_id = before
    marker.updated_at = timezone.now()
    marker.save(update_fields=["last_read_message", "updated_at"])
    events.publish_message_read(
        clinic_id=conversation.clinic_id,
        conversation_id=conversation.pk,
        user_id=user.pk,
        message_id=before,
        unread=True,
    )
    return marker


def _send_read_receipt(conversation: Conversation, *, up_to: Message) -> None:
    """Show the patient the blue ticks: WhatsApp marks every earlier message read with the latest one."""
    latest = (
        conversation.messages.filter(
            direction=Direction.INBOUND, sender_type=SenderType.PATIENT, external_id__isnull=False, id__lte=up_to.pk
        )
        .order_by("-id")
        .values_list("pk", flat=True)
        .first()
    )
    if latest is not None and has_real_channel(conversation.clinic_id):
        jobs.send_read_receipt(latest)
