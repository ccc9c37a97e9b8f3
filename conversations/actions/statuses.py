"""Statuses the provider reports (sent, delivered, read, failed), including those ahead of their message."""

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from conversations.actions.locks import lock_external_id
from conversations.actions.messages import update_message_status
from conversations.models import Direction, Message, MessageStatus, PendingStatus
from conversations.selectors import was_erased


@transaction.atomic
def record_provider_status(
    *,
    clinic_id: int,
    external_id: str,
    status: str,
    happened_at: datetime,
    error: str = "",
    message_id: int | None = None,
) -> bool:
    """Apply a status the provider reported; kept for later if its message is not known yet.

    Returns whether a message changed. Late, repeated and backward statuses change nothing. Serialised
    with the write that makes the message's id known (lock_external_id): a status kept for later is
    always there when that write looks for it, and one arriving meanwhile finds the message. A status
    that names (`message_id`, from the send's callback data) a message of the clinic still without an id
    (its send's answer never came) settles that message: WhatsApp had it after all.
    """
    lock_external_id(clinic_id, external_id)
    message = Message.objects.filter(clinic_id=clinic_id, external_id=external_id).first()
    if message is None and message_id is not None and (unsettled := _unsettled(clinic_id, message_id)) is not None:
        return update_message_status(
            message=unsettled, status=status, error=error, at=happened_at, external_id=external_id
        )[1]
    if message is None and was_erased(clinic_id, external_id=external_id):
        return False  # a status of an erased patient's message: nothing of them is kept
    if message is None:
        PendingStatus.objects.get_or_create(
            clinic_id=clinic_id,
            external_id=external_id,
            status=status,
            defaults={"error": error, "happened_at": happened_at},
        )
        expired = timezone.now() - timedelta(days=settings.PENDING_STATUS_DAYS)
        PendingStatus.objects.filter(clinic_id=clinic_id, received_at__lt=expired).delete()
        return False
    return update_message_status(message=message, status=status, error=error, at=happened_at)[1]


def _unsettled(clinic_id: int, message_id: int) -> Message | None:
    """The clinic's outbound message `message_id`, if WhatsApp's id for it is still unknown."""
    return Message.objects.filter(
        pk=message_id,
        clinic_id=clinic_id,
        direction=Direction.OUTBOUND,
        external_id__isnull=True,
        status__in=(MessageStatus.PENDING, MessageStatus.UNKNOWN),
    ).first()
