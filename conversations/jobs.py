"""The one place actions put work on the task queue (conversations.tasks). Tasks call actions; actions
never import tasks: each task is named here and looked up when work is queued, so the dependency runs
one way (tasks → actions → jobs) and both modules load in any order.

Call inside the action's transaction: the work is committed with the change that calls for it, or not
at all (django-tasks-db keeps the queue in the database)."""

from datetime import datetime

from django.utils.module_loading import import_string


def _task(name: str):
    return import_string(f"conversations.tasks.{name}")


def _enqueue(name: str, *args, at: datetime | None = None) -> None:
    task = _task(name)
    (task.using(run_after=at) if at is not None else task).enqueue(*args)


def deliver(message_id: int, *, at: datetime | None = None) -> None:
    """Hand an outbound message to its provider (now, or a retry at `at`)."""
    _enqueue("deliver_message", message_id, at=at)


def simulate_status(message_id: int, status: str, *, at: datetime) -> None:
    """The simulator's later tick (delivered, read) for a message it took."""
    _enqueue("simulate_status", message_id, status, at=at)


def download_media(message_id: int) -> None:
    """Fetch the media a patient sent (the task retries itself)."""
    _enqueue("download_inbound_media", message_id)


def send_read_receipt(message_id: int) -> None:
    """Mark a patient's message read on their WhatsApp (the task retries itself)."""
    _enqueue("send_read_receipt", message_id)


def wake(conversation_id: int, *, at: datetime) -> None:
    """Bring a snoozed conversation back at `at` (kept in the database: it survives restarts)."""
    _enqueue("wake_conversation", conversation_id, at=at)


def push(kind: str, *args, at: datetime | None = None) -> None:
    """Tell staff's devices (Web Push) of a new patient message ("message", its id), a mention ("mention",
    the note's id) or a wait past the target ("late", the conversation's id and when the wait began)."""
    _enqueue("send_push", kind, *args, at=at)


def send_reaction(message_id: int, emoji: str) -> None:
    """Send staff's reaction to a patient's message (`""` takes it back) to WhatsApp."""
    _enqueue("send_reaction", message_id, emoji)
