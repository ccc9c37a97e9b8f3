"""Background work, run by `manage.py db_worker`: deliveries, the simulator's ticks, media, read receipts
and the end of snoozes.

Each task parses its arguments, calls the provider or an action, and never holds a transaction open
while it waits on the network.
"""

import logging
import re
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError
from django.tasks import task
from django.utils import timezone

from conversations.actions.attempts import begin_delivery_attempt, finish_delivery_attempt, retry_delay
from conversations.actions.conversations import wake_conversation as wake
from conversations.actions.media import attach_inbound_media, record_media_failure
from conversations.actions.messages import update_message_status
from conversations.actions.push import notify_late, notify_mention, notify_new_message
from conversations.actions.reactions import record_reaction_sent, still_wanted
from conversations.media import safe_file_name
from conversations.models import DeliveryAttempt, Message, MessageStatus

logger = logging.getLogger(__name__)
MEDIA_MAX_ATTEMPTS = 5


@task()
def deliver_message(message_id: int) -> str:
    """Hand a pending message to the clinic's provider, at most once (see actions.attempts)."""
    from conversations.errors import NO_WHATSAPP_NUMBER
    from conversations.providers import provider_for
    from conversations.providers.base import NotSent, OutcomeUnknown, Rejected

    message = Message.objects.select_related("conversation__contact").filter(pk=message_id).first()
    if message is None:
        return "gone"
    provider = provider_for(message.clinic_id, message.conversation.whatsapp_number_id)
    attempt = begin_delivery_attempt(message_id=message_id, provider=provider.name if provider else "")
    if attempt is None:
        return "nothing to send"
    if provider is None:  # the clinic's number was removed after this was queued: it reached nobody
        finish_delivery_attempt(attempt=attempt, outcome=DeliveryAttempt.Outcome.REJECTED, detail=NO_WHATSAPP_NUMBER)
        return DeliveryAttempt.Outcome.REJECTED
    try:
        external_id = provider.send(message)
    except NotSent as error:
        outcome, detail, external_id = DeliveryAttempt.Outcome.NOT_SENT, error.reason, None
    except Rejected as error:
        outcome, detail, external_id = DeliveryAttempt.Outcome.REJECTED, error.reason, None
    except OutcomeUnknown as error:
        outcome, detail, external_id = DeliveryAttempt.Outcome.UNKNOWN, error.reason, None
    except Exception:
        # A bug after the request may have gone out: treat it as unknown rather than risk a duplicate.
        logger.exception("delivery of message %s failed unexpectedly", message_id)
        outcome, detail, external_id = (
            DeliveryAttempt.Outcome.UNKNOWN,
            "Unexpected error while sending; not retried.",
            None,
        )
    else:
        outcome, detail = DeliveryAttempt.Outcome.SENT, ""
    finish_delivery_attempt(attempt=attempt, outcome=outcome, detail=detail, external_id=external_id)
    return outcome


@task()
def simulate_status(message_id: int, status: str) -> str:
    """The simulator's later ticks: delivered, then read."""

    message = Message.objects.filter(pk=message_id).first()
    if message is None:
        return "gone"
    return "changed" if update_message_status(message=message, status=status)[1] else "unchanged"


@task()
def download_inbound_media(message_id: int, attempt: int = 1) -> str:
    """Fetch the media a patient sent (media id → URL → bytes); the message is already on every screen."""
    from conversations.providers import channel_of
    from conversations.providers.base import NotSent, ProviderError
    from conversations.providers.whatsapp_cloud import GraphClient

    message = Message.objects.select_related("conversation").filter(pk=message_id).first()
    if message is None:
        return "gone"
    media_id = message.metadata.get("media_id")
    channel = channel_of(message.clinic_id, message.conversation.whatsapp_number_id)  # the number it came to
    if not media_id or channel is None or channel.simulated:
        record_media_failure(message=message, reason="No WhatsApp channel to fetch this media from.")
        return "no channel"
    client = GraphClient(channel)
    try:
        info = client.media_info(media_id)
        content = client.download(info["url"], max_bytes=settings.WHATSAPP_MEDIA_MAX_BYTES)
    except NotSent as error:
        if attempt < MEDIA_MAX_ATTEMPTS:
            run_after = timezone.now() + retry_delay(attempt)
            download_inbound_media.using(run_after=run_after).enqueue(message_id, attempt + 1)
            return "retrying"
        record_media_failure(message=message, reason=f"Gave up after {attempt} attempts: {error.reason}")
        return "failed"
    except (ProviderError, KeyError, TypeError) as error:
        record_media_failure(message=message, reason=getattr(error, "reason", "WhatsApp sent no media URL."))
        return "failed"
    finally:
        client.close()
    content_type = (info.get("mime_type") or message.metadata.get("mime_type") or "application/octet-stream").split(
        ";"
    )[0]
    try:
        attach_inbound_media(
            message=message,
            content=content,
            file_name=media_file_name(message, content_type),
            content_type=content_type,
        )
    except OSError as error:  # the storage failed (a full disk): nothing was kept; try again later
        logger.error("keeping the media of message %s failed: %r", message_id, error)
        if attempt < MEDIA_MAX_ATTEMPTS:
            download_inbound_media.using(run_after=timezone.now() + retry_delay(attempt)).enqueue(
                message_id, attempt + 1
            )
            return "retrying"
        record_media_failure(message=message, reason=f"The file could not be stored: {error.strerror or error}")
        return "failed"
    except DatabaseError as error:  # the database failed meanwhile (away, a deadlock): try again later
        logger.error("recording the media of message %s failed: %r", message_id, error)
        if attempt < MEDIA_MAX_ATTEMPTS:
            download_inbound_media.using(run_after=timezone.now() + retry_delay(attempt)).enqueue(
                message_id, attempt + 1
            )
            return "retrying"
        raise
    except Exception as error:  # anything else the storage refused: never left "downloading" for ever
        logger.exception("keeping the media of message %s failed", message_id)
        record_media_failure(message=message, reason=f"The file could not be stored: {error.__class__.__name__}")
        return "failed"
    return "downloaded"


def media_file_name(message: Message, content_type: str) -> str:
    """The name the patient gave the file (made safe: no folders, no control characters), else one of ours."""
    extension = re.sub(r"[^a-z0-9]", "", content_type.split("/")[-1].replace("jpeg", "jpg"))[:8] or "bin"
    ours = f"{message.message_type}-{message.pk}.{extension}"
    return safe_file_name(message.metadata.get("filename") or "", ours)


@task()
def send_read_receipt(message_id: int, attempt: int = 1) -> str:
    """Mark an inbound message (and every earlier one) read on the patient's WhatsApp."""
    from conversations.providers import channel_of
    from conversations.providers.base import NotSent, ProviderError
    from conversations.providers.whatsapp_cloud import GraphClient

    message = Message.objects.select_related("conversation").filter(pk=message_id, external_id__isnull=False).first()
    channel = channel_of(message.clinic_id, message.conversation.whatsapp_number_id) if message else None
    if message is None or channel is None or channel.simulated:
        return "nothing to do"
    client = GraphClient(channel)
    try:
        client.mark_read(message.external_id)
    except NotSent:
        if attempt < 3:
            send_read_receipt.using(run_after=timezone.now() + retry_delay(attempt)).enqueue(message_id, attempt + 1)
            return "retrying"
        return "gave up"
    except ProviderError as error:
        logger.info("read receipt for message %s refused: %s", message_id, error.reason)
        return "refused"
    finally:
        client.close()
    return "sent"


def stalled_deliveries(older_than_minutes: int) -> list[int]:
    """Pending outbound messages older than this with no delivery queued or running: a worker died on them.
    A delivery task running for longer than a send can take (DELIVERY_IN_FLIGHT_SECONDS) is a dead
    worker's, left marked as running."""
    from django.conf import settings
    from django.db.models import Q
    from django_tasks_db.models import DBTaskResult

    cutoff = timezone.now() - timedelta(minutes=older_than_minutes)
    pending = set(
        Message.objects.filter(status=MessageStatus.PENDING, direction="outbound", created_at__lt=cutoff).values_list(
            "pk", flat=True
        )
    )
    if not pending:
        return []
    running_since = timezone.now() - timedelta(seconds=settings.DELIVERY_IN_FLIGHT_SECONDS)
    alive = Q(status="READY") | Q(status="RUNNING", started_at__gt=running_since)
    queued = DBTaskResult.objects.filter(alive, task_path=deliver_message.module_path).values_list(
        "args_kwargs", flat=True
    )
    waiting = {args["args"][0] for args in queued if args.get("args")}
    return sorted(pending - waiting)


@task()
def send_reaction(message_id: int, emoji: str, attempt: int = 1) -> str:
    """Staff's reaction (or its removal) as WhatsApp's `reaction` message on the patient's message. Sending
    the same reaction twice leaves it as it was, so a transient failure is simply tried again."""
    from conversations.providers import channel_of
    from conversations.providers.base import NotSent, OutcomeUnknown, ProviderError
    from conversations.providers.whatsapp_cloud import GraphClient, recipient_of

    message = Message.objects.select_related("conversation__contact").filter(pk=message_id).first()
    channel = channel_of(message.clinic_id, message.conversation.whatsapp_number_id) if message else None
    if message is None or channel is None:
        return "nothing to do"
    if not still_wanted(message_id, emoji):
        return "changed meanwhile"  # a later reaction (or its removal) has its own send
    if channel.simulated:
        record_reaction_sent(message_id=message_id, emoji=emoji)
        return "simulated"
    client = GraphClient(channel)
    try:
        recipient = recipient_of(message.conversation.contact)
        client.send({**recipient, "type": "reaction", "reaction": {"message_id": message.external_id, "emoji": emoji}})
    except (NotSent, OutcomeUnknown) as error:
        if attempt < 3:
            send_reaction.using(run_after=timezone.now() + retry_delay(attempt)).enqueue(message_id, emoji, attempt + 1)
            return "retrying"
        record_reaction_sent(message_id=message_id, emoji=emoji, error=error.reason)
        return "gave up"
    except ProviderError as error:
        record_reaction_sent(message_id=message_id, emoji=emoji, error=error.reason)
        return "refused"
    finally:
        client.close()
    record_reaction_sent(message_id=message_id, emoji=emoji)
    return "sent"


@task()
def wake_conversation(conversation_id: int) -> str:
    """A snooze ends: the conversation is back in the open list (see actions.conversations)."""
    woken = wake(conversation_id=conversation_id)
    return "woken" if woken else "nothing to do"


@task(queue_name="push")
def send_push(kind: str, *args) -> str:
    """Web Push to staff's devices, from the worker: never on a request's path. A queue of its own, so a push
    service that answers slowly never holds up a reply to a patient (deploy/systemd/taskmed-push.service)."""
    if kind == "message":
        told = notify_new_message(message_id=args[0])
    elif kind == "mention":
        told = notify_mention(note_id=args[0])
    elif kind == "late":
        told = notify_late(conversation_id=args[0], since=args[1])
    else:
        return f"unknown kind {kind!r}"
    return f"{told} device(s) told"
