"""Actions of the delivery path: attempts to the provider, provider statuses, and inbound media.

The guarantee: a message is handed to WhatsApp at most once. An attempt is committed before the call;
if the process dies before its outcome is committed, the next run finds it still in flight and fails the
message as "outcome unknown" instead of sending again. Staff see why and can resend it themselves.
"""

import random
from datetime import datetime, timedelta

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone

from conversations import events
from conversations.actions.locks import lock_external_id
from conversations.actions.messages import update_message_status
from conversations.models import DeliveryAttempt, Message, MessageAttachment, MessageStatus, PendingStatus

Outcome = DeliveryAttempt.Outcome


def retry_delay(attempt_number: int) -> timedelta:
    """Exponential backoff with full jitter: base × 2^(n-1), randomised so retries do not arrive in step."""
    ceiling = settings.DELIVERY_RETRY_BASE_SECONDS * 2 ** (attempt_number - 1)
    return timedelta(seconds=random.uniform(ceiling / 2, ceiling))


def _in_flight_since() -> datetime:
    """Attempts started after this may still be running (settings.DELIVERY_IN_FLIGHT_SECONDS)."""
    return timezone.now() - timedelta(seconds=settings.DELIVERY_IN_FLIGHT_SECONDS)


@transaction.atomic
def begin_delivery_attempt(*, message_id: int, provider: str) -> DeliveryAttempt | None:
    """Record that the provider is about to be called; None when there is nothing (more) to send."""
    # Locked so two workers running the same task cannot both start an attempt.
    message = Message.objects.select_for_update().filter(pk=message_id).first()
    if message is None or message.status != MessageStatus.PENDING:
        return None
    unfinished = message.delivery_attempts.filter(outcome=Outcome.IN_FLIGHT).first()
    if unfinished is not None and unfinished.started_at > _in_flight_since():
        return None  # another worker's send is still running: its outcome decides
    if unfinished is not None:
        _finish(
            unfinished,
            Outcome.UNKNOWN,
            "The delivery was interrupted after WhatsApp was called; the message may have been delivered, "
            "so it was not sent again.",
        )
        return None
    number = message.delivery_attempts.count() + 1
    return DeliveryAttempt.objects.create(message=message, number=number, provider=provider)


@transaction.atomic
def finish_delivery_attempt(
    *, attempt: DeliveryAttempt, outcome: str, detail: str = "", external_id: str | None = None
) -> Message:
    """Record the provider's answer and move the message on: sent, failed, or retried later."""
    attempt = DeliveryAttempt.objects.select_for_update().get(pk=attempt.pk)
    return _finish(attempt, outcome, detail, external_id)


def _finish(attempt: DeliveryAttempt, outcome: str, detail: str = "", external_id: str | None = None) -> Message:
    from conversations import tasks  # tasks import the actions

    attempt.outcome, attempt.detail, attempt.finished_at = outcome, detail, timezone.now()
    attempt.save(update_fields=["outcome", "detail", "finished_at"])
    message = attempt.message
    if outcome == Outcome.SENT:
        message, _ = update_message_status(message=message, status=MessageStatus.SENT, external_id=external_id)
        if attempt.provider == "simulator":
            now = timezone.now()
            delivered = now + timedelta(seconds=settings.SIMULATOR_DELIVERED_AFTER_SECONDS)
            read = now + timedelta(seconds=settings.SIMULATOR_READ_AFTER_SECONDS)
            tasks.simulate_status.using(run_after=delivered).enqueue(message.pk, MessageStatus.DELIVERED)
            tasks.simulate_status.using(run_after=read).enqueue(message.pk, MessageStatus.READ)
    elif outcome == Outcome.NOT_SENT and attempt.number < settings.DELIVERY_MAX_ATTEMPTS:
        # Enqueued in this transaction: the retry exists exactly when this outcome does.
        tasks.deliver_message.using(run_after=timezone.now() + retry_delay(attempt.number)).enqueue(message.pk)
    else:
        if outcome == Outcome.NOT_SENT:
            detail = f"Gave up after {attempt.number} attempts: {detail}"
        message, _ = update_message_status(message=message, status=MessageStatus.FAILED, error=detail)
    return message


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


@transaction.atomic
def attach_inbound_media(
    *, message: Message, content: bytes, file_name: str, content_type: str
) -> MessageAttachment | None:
    """Keep the media a patient sent, downloaded after the message was stored; tells every screen."""
    message = Message.objects.select_for_update().get(pk=message.pk)
    if message.metadata.get("erased"):
        return None  # the patient was erased while the download ran: keep nothing
    attachment = MessageAttachment.objects.create(
        message=message,
        file=ContentFile(content, name=file_name),
        file_name=file_name,
        content_type=content_type,
        size=len(content),
    )
    message.metadata = {**message.metadata, "media_status": "downloaded"}
    message.metadata.pop("media_error", None)
    message.save(update_fields=["metadata"])
    events.publish_message_updated(message)
    return attachment


@transaction.atomic
def record_media_failure(*, message: Message, reason: str) -> Message:
    """The media could not be fetched: the message stays, with the reason for staff to see."""
    message = Message.objects.select_for_update().get(pk=message.pk)
    message.metadata = {**message.metadata, "media_status": "failed", "media_error": reason}
    message.save(update_fields=["metadata"])
    events.publish_message_updated(message)
    return message
