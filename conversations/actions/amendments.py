"""A patient's edits and deletions (WhatsApp's `edit` and `revoke` notifications), applied to the message they
change — never messages of their own. An edited message shows its new text marked *editada*, each earlier
text kept in its metadata for the clinic's record (`edits`); a deleted one shows *mensagem apagada* (its text
stays in the record: the clinic's copy of what it was told, exported and erased with the patient). Every
change reaches every screen as `message:updated`."""

from datetime import datetime

from django.db import transaction

from conversations import events
from conversations.models import Contact, Direction, Message


def _latest_changed(message: Message) -> None:
    """The list previews the conversation's latest message: when that one changed, its row is told too."""
    latest = message.conversation.messages.exclude(message_type="system").order_by("-created_at", "-id").first()
    if latest is not None and latest.pk == message.pk:
        events.publish_conversation_updated(message.conversation, ["last_message"])


def _original(clinic_id: int, contact: Contact, external_id: str) -> Message | None:
    return (
        Message.objects.select_for_update(no_key=True)
        .filter(
            clinic_id=clinic_id, external_id=external_id, conversation__contact=contact, direction=Direction.INBOUND
        )
        .first()
    )


@transaction.atomic
def receive_edit(
    *, clinic_id: int, contact: Contact, original: str, content: str, external_id: str | None, at: datetime
) -> Message | None:
    """The patient edited `original`: its text becomes `content`, the former text kept. None when the clinic
    does not have that message (the caller keeps the notification as a message of its own then). A
    repeated notification, or one older than the edit already shown, changes nothing."""
    message = _original(clinic_id, contact, original)
    if message is None:
        return None
    edits = list(message.metadata.get("edits") or [])
    if any(edit.get("id") == external_id for edit in edits if external_id):
        return message
    if message.metadata.get("edited_at", "") > at.isoformat():
        return message
    edits.append({"content": message.content, "replaced_at": at.isoformat(), "id": external_id})
    message.content = content
    message.metadata = {**message.metadata, "edits": edits, "edited_at": at.isoformat()}
    message.save(update_fields=["content", "metadata"])
    events.publish_message_updated(message)
    _latest_changed(message)
    return message


@transaction.atomic
def receive_revoke(*, clinic_id: int, contact: Contact, original: str, at: datetime) -> Message | None:
    """The patient deleted `original` for everyone: shown as deleted from now on. None when the clinic does
    not have that message."""
    message = _original(clinic_id, contact, original)
    if message is None:
        return None
    if not message.metadata.get("revoked_at"):
        message.metadata = {**message.metadata, "revoked_at": at.isoformat()}
        message.save(update_fields=["metadata", "content"])  # as a change of text: the list's preview changes
        events.publish_message_updated(message)
        _latest_changed(message)
    return message
