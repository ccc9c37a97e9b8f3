"""Deliveries to the provider, attempt by attempt.

The guarantee: a message is handed to WhatsApp at most once. An attempt is committed before the call;
if the process dies before its outcome is committed, the next run finds it still in flight and marks the
message `unknown` instead of sending again, as it does when WhatsApp's answer never came (a timeout, a 5xx
after the request was written). Staff see why and can resend it themselves; a later status from WhatsApp
(which names the message in `biz_opaque_callback_data`) settles it.
"""

import random
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from conversations import jobs
from conversations.actions.messages import update_message_status
from conversations.models import DeliveryAttempt, Message, MessageStatus

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
    message = Message.objects.select_for_update(no_key=True).filter(pk=message_id).first()
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
    attempt.outcome, attempt.detail, attempt.finished_at = outcome, detail, timezone.now()
    attempt.save(update_fields=["outcome", "detail", "finished_at"])
    message = attempt.message
    if outcome == Outcome.SENT:
        message, _ = update_message_status(message=message, status=MessageStatus.SENT, external_id=external_id)
        if attempt.provider == "simulator":
            now = timezone.now()
            delivered = now + timedelta(seconds=settings.SIMULATOR_DELIVERED_AFTER_SECONDS)
            read = now + timedelta(seconds=settings.SIMULATOR_READ_AFTER_SECONDS)
            jobs.simulate_status(message.pk, MessageStatus.DELIVERED, at=delivered)
            jobs.simulate_status(message.pk, MessageStatus.READ, at=read)
    elif outcome == Outcome.NOT_SENT and attempt.number < settings.DELIVERY_MAX_ATTEMPTS:
        # Enqueued in this transaction: the retry exists exactly when this outcome does.
        jobs.deliver(message.pk, at=timezone.now() + retry_delay(attempt.number))
    elif outcome == Outcome.UNKNOWN:
        message, _ = update_message_status(message=message, status=MessageStatus.UNKNOWN, error=detail)
    else:
        if outcome == Outcome.NOT_SENT:
            detail = f"Gave up after {attempt.number} attempts: {detail}"
        message, _ = update_message_status(message=message, status=MessageStatus.FAILED, error=detail)
    return message
