"""Statuses the provider reports (sent, delivered, read, failed), including those ahead of their message."""

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from conversations.actions.locks import lock_external_id
from conversations.actions.messages import update_message_status
from conversations.models import Message, PendingStatus


@transaction.atomic
def record_provider_status(
    *, clinic_id: int, external_id: str, status: str, happened_at: datetime, error: str = ""
) -> bool:
    """Apply a status the provider reported; kept for later if its message is not known yet.

    Returns whether a message changed. Late, repeated and backward statuses change nothing. Serialised
    with the write that makes the message's id known (lock_external_id): a status kept for later is
    always there when that write looks for it, and one arriving meanwhile finds the message.
    """
    lock_external_id(clinic_id, external_id)
    message = Message.objects.filter(clinic_id=clinic_id, external_id=external_id).first()
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
