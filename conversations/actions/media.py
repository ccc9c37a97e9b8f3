"""Media a patient sent, fetched after their message was stored: kept, or the reason it could not be."""

from django.core.files.base import ContentFile
from django.db import transaction

from conversations import events
from conversations.media import SNIFF_BYTES, content_type_of
from conversations.models import Message, MessageAttachment


@transaction.atomic
def attach_inbound_media(
    *, message: Message, content: bytes, file_name: str, content_type: str
) -> MessageAttachment | None:
    """Keep the media a patient sent, downloaded after the message was stored; tells every screen. Its type
    is what its bytes say, as for staff's uploads: the type declared by the download is believed only where
    the bytes cannot tell (the media view shows inline only images, audio and video)."""
    content_type = content_type_of(content[:SNIFF_BYTES], content_type)
    message = Message.objects.select_for_update(no_key=True).get(pk=message.pk)
    if message.metadata.get("erased"):
        return None  # the patient was erased while the download ran: keep nothing
    attachment = MessageAttachment(message=message, file_name=file_name, content_type=content_type, size=len(content))
    attachment.file.save(file_name, ContentFile(content), save=False)
    try:
        attachment.save()
        message.metadata = {**message.metadata, "media_status": "downloaded"}
        message.metadata.pop("media_error", None)
        message.save(update_fields=["metadata"])
        events.publish_message_updated(message)
    except BaseException:
        attachment.file.delete(save=False)  # the rows roll back: the file must not stay behind alone
        raise
    return attachment


@transaction.atomic
def record_media_failure(*, message: Message, reason: str) -> Message:
    """The media could not be fetched: the message stays, with the reason for staff to see."""
    message = Message.objects.select_for_update(no_key=True).get(pk=message.pk)
    message.metadata = {**message.metadata, "media_status": "failed", "media_error": reason}
    message.save(update_fields=["metadata"])
    events.publish_message_updated(message)
    return message
