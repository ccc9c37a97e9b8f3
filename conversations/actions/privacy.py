"""A patient's rights under LGPD: everything held about them, exported; their erasure; and each clinic's
retention, applied. Every one of these is audited (who, when, from where) and never records what it
removed."""

import json
import logging
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import timedelta

from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import AbstractBaseUser
from django.db import OperationalError, connection, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from conversations import events, wire
from conversations.actions.audit import record_audit
from conversations.actions.inbound_fast import forget_snapshots
from conversations.errors import WrongClinic
from conversations.models import (
    AuditEvent,
    Clinic,
    Contact,
    Conversation,
    ConversationAction,
    DeliveryAttempt,
    ErasedIdentifier,
    Message,
    MessageAttachment,
    Note,
    PendingStatus,
    ReadMarker,
)
from conversations.storage import delete_on_commit
from conversations.voice import TRANSCRIBED
from realtime import log

logger = logging.getLogger(__name__)

ERASED_NAME = "Paciente anonimizado"
ERASE_ATTEMPTS = 3  # an erasure PostgreSQL ends to break a deadlock is taken again, whole, this often
DEADLOCK = "40P01"  # PostgreSQL's deadlock_detected


def messages_of(conversation_ids: list[int]) -> list[int]:
    return list(Message.objects.filter(conversation_id__in=conversation_ids).values_list("pk", flat=True))


# --- Export --------------------------------------------------------------------------------------------


def _audit_about(contact: Contact, conversation_ids: list[int], message_ids: list[int]) -> list[dict]:
    about = AuditEvent.objects.filter(clinic_id=contact.clinic_id).filter(
        Q(object_type="contact", object_id=str(contact.pk))
        | Q(object_type="conversation", object_id__in=[str(i) for i in conversation_ids])
        | Q(object_type="message", object_id__in=[str(i) for i in message_ids])
    )
    return [
        {
            "at": wire.iso(a.at),
            "action": a.action,
            "actor_id": a.actor_id,
            "object_type": a.object_type,
            "object_id": a.object_id,
            "detail": a.detail,
        }
        for a in about.order_by("at", "pk")
    ]


def _attachment_path(file: MessageAttachment) -> str:
    return f"attachments/{file.pk}-{file.file_name.replace('/', '_')}"


def export_contact(*, contact: Contact, actor: AbstractBaseUser | None, ip: str | None = None):
    """Everything the clinic holds about the patient, as one zip: `patient.json` (the patient, each of
    their conversations with every message, delivery attempt, clinical action, staff note and read mark, and the
    audit trail about them) and `attachments/` (every file). Audited as `contact.exported`. Returns the zip
    as an open file, at its start: kept in memory while small, on disk beyond (files are copied in pieces,
    never read whole)."""
    conversations = list(
        Conversation.objects.filter(contact=contact, clinic_id=contact.clinic_id)
        .select_related("assignee")
        .prefetch_related("labels")
        .order_by("pk")
    )
    conversation_ids = [c.pk for c in conversations]
    messages = list(
        Message.objects.filter(clinic_id=contact.clinic_id, conversation_id__in=conversation_ids)
        .select_related("sender")
        .prefetch_related("attachments", "delivery_attempts")
        .order_by("created_at", "pk")
    )
    by_conversation: dict[int, list[Message]] = {}
    for message in messages:
        by_conversation.setdefault(message.conversation_id, []).append(message)
    actions = ConversationAction.objects.filter(conversation_id__in=conversation_ids).order_by("created_at", "pk")
    markers = ReadMarker.objects.filter(conversation_id__in=conversation_ids).order_by("pk")
    notes = list(
        Note.objects.filter(conversation_id__in=conversation_ids)
        .select_related("author")
        .prefetch_related("mentions")
        .order_by("created_at", "pk")
    )

    def message_out(message: Message) -> dict:
        files = list(message.attachments.all())
        return {
            **wire.message(message, attachments=files),
            "attachments": [{**wire.attachment(f), "path": _attachment_path(f)} for f in files],
            "delivery_attempts": [
                {
                    "number": a.number,
                    "provider": a.provider,
                    "outcome": a.outcome,
                    "detail": a.detail,
                    "started_at": wire.iso(a.started_at),
                    "finished_at": wire.iso(a.finished_at),
                }
                for a in sorted(message.delivery_attempts.all(), key=lambda a: a.number)
            ],
        }

    document = {
        "exported_at": wire.iso(timezone.now()),
        "clinic": {"id": contact.clinic_id, "name": contact.clinic.name},
        "patient": wire.contact(contact),
        "conversations": [
            {
                **wire.conversation(c),
                "whatsapp_number_id": c.whatsapp_number_id,
                "messages": [message_out(m) for m in by_conversation.get(c.pk, [])],
                "actions": [wire.action(a) for a in actions if a.conversation_id == c.pk],
                "notes": [wire.note(n) for n in notes if n.conversation_id == c.pk],
                "read_marks": [
                    {
                        "user_id": m.user_id,
                        "last_read_message_id": m.last_read_message_id,
                        "updated_at": wire.iso(m.updated_at),
                    }
                    for m in markers
                    if m.conversation_id == c.pk
                ],
            }
            for c in conversations
        ],
        "audit": _audit_about(contact, conversation_ids, [m.pk for m in messages]),
    }
    output = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)
    with zipfile.ZipFile(output, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("patient.json", json.dumps(document, ensure_ascii=False, indent=2, default=str))
        for message in messages:
            for file in message.attachments.all():
                try:
                    with file.file.open("rb") as stored, archive.open(_attachment_path(file), "w") as entry:
                        shutil.copyfileobj(stored, entry, 1024 * 1024)
                except (FileNotFoundError, ValueError, OSError):
                    logger.warning("export of contact %s: attachment %s is missing from storage", contact.pk, file.pk)
                    archive.writestr(_attachment_path(file) + ".missing.txt", "This file is missing from storage.")
    record_audit(
        clinic_id=contact.clinic_id,
        actor=actor,
        action="contact.exported",
        obj=contact,
        detail={"conversations": len(conversations), "messages": len(messages)},
        ip=ip,
    )
    output.seek(0)
    return output


# --- Erasure -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Erased:
    conversations: int
    messages: int
    files: int
    events: int

    def as_dict(self) -> dict:
        return asdict(self)


def erase_contact(*, contact: Contact, actor: AbstractBaseUser | None, ip: str | None = None) -> Erased:
    """Anonymise the patient: who they are (name, phone, WhatsApp ids, e-mail) and every free-form value
    held about them — texts, staff's notes and the assistant's suggestions, message metadata, clinical
    actions' data whatever its keys and however nested, files, provider ids and errors — are deleted, here
    and in the event log's copies (the search index follows the text). What stays is structure only: their
    conversations, the messages' count, order, direction, type and status, the clinical actions' types and
    times, so the clinic's numbers stay true. One-way marks of their WhatsApp message ids and identifiers
    are kept (models.ErasedIdentifier), so Meta delivering an old notification again does not bring them
    back. Open screens are told. Audited as `contact.erased` with the counts only. Erasing twice changes
    nothing more.

    Taken again, whole, when PostgreSQL ends it to break a deadlock (outside a caller's transaction): the
    patient's record is locked before their conversations, as a message on the full path does, and a
    message on the fast path takes them the other way round (actions.locks)."""
    for attempt in range(2, ERASE_ATTEMPTS + 1):
        try:
            return _erase_contact(contact, actor, ip)
        except OperationalError as error:
            if getattr(error.__cause__, "sqlstate", None) != DEADLOCK or connection.in_atomic_block:
                raise
            logger.warning(
                "erasing patient %s met a deadlock; taken again (%d of %d)", contact.pk, attempt, ERASE_ATTEMPTS
            )
    return _erase_contact(contact, actor, ip)


@transaction.atomic
def _erase_contact(contact: Contact, actor: AbstractBaseUser | None, ip: str | None) -> Erased:
    # The record first, then their conversations, FOR NO KEY UPDATE (actions.locks): a message on the full
    # path holds the record while it finds or makes the thread, so every conversation it makes is read here.
    # A message arriving or being sent now waits, and is erased or written after (to a new patient, for an
    # inbound one: the phone is gone).
    contact = Contact.objects.select_for_update(no_key=True).filter(pk=contact.pk).first()
    if contact is None:  # merged into another record meanwhile (taken again after a deadlock with the merge)
        raise WrongClinic("No such patient in this clinic.")
    conversation_ids = list(
        Conversation.objects.select_for_update(no_key=True)
        .filter(contact=contact, clinic_id=contact.clinic_id)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    LogEntry.objects.filter(
        Q(content_type__model="contact", object_id=str(contact.pk))
        | Q(content_type__model="conversation", object_id__in=[str(i) for i in conversation_ids])
        | Q(content_type__model="message", object_id__in=[str(i) for i in messages_of(conversation_ids)])
    ).update(object_repr="(anonimizado)", change_message="")
    messages = Message.objects.filter(clinic_id=contact.clinic_id, conversation_id__in=conversation_ids)
    external_ids = [e for e in messages.exclude(external_id=None).values_list("external_id", flat=True)]
    _mark_erased(contact, external_ids)
    files = list(MessageAttachment.objects.filter(message__conversation_id__in=conversation_ids))
    message_count = messages.update(content="", metadata={"erased": True}, error="", external_id=None)
    DeliveryAttempt.objects.filter(message__conversation_id__in=conversation_ids).update(detail="")
    # Staff's words about them, and the assistant's suggestions (whose automation ids may name them too).
    Note.objects.filter(conversation_id__in=conversation_ids).update(content="", source_id="")
    PendingStatus.objects.filter(clinic_id=contact.clinic_id, external_id__in=external_ids).delete()
    # An automation's action data is free-form (any keys, any language, nested): none of it is kept.
    ConversationAction.objects.filter(conversation_id__in=conversation_ids).update(action_data={})
    MessageAttachment.objects.filter(pk__in=[f.pk for f in files]).delete()
    delete_on_commit(files)
    event_count = log.erase_data(contact.clinic_id, conversation_ids)
    contact.name, contact.profile_name, contact.email, contact.notes = ERASED_NAME, "", "", ""
    contact.phone = contact.whatsapp_id = contact.whatsapp_user_id = contact.whatsapp_parent_user_id = ""
    contact.whatsapp_username = ""
    contact.status, contact.updated_at = Contact.Status.ERASED, timezone.now()
    contact.save()
    forget_snapshots()  # this process's memory of the patient's open conversation, by phone
    result = Erased(len(conversation_ids), message_count, len(files), event_count)
    record_audit(
        clinic_id=contact.clinic_id, actor=actor, action="contact.erased", obj=contact, detail=result.as_dict(), ip=ip
    )
    for conversation in Conversation.objects.filter(pk__in=conversation_ids).select_related("contact", "assignee"):
        events.publish_conversation_updated(conversation, ["contact", "erased"])
    return result


def _mark_erased(contact: Contact, external_ids: list[str]) -> None:
    """Keep one-way marks of the patient's WhatsApp message ids and identifiers (selectors.was_erased)."""
    kinds = ErasedIdentifier.Kind
    identifiers = (contact.phone, contact.whatsapp_id, contact.whatsapp_user_id, contact.whatsapp_parent_user_id)
    marks = [(kinds.MESSAGE, value) for value in external_ids] + [(kinds.PATIENT, v) for v in identifiers if v]
    now = timezone.now()
    # Erased again later (the same phone came back and was erased too): the newer time counts.
    ErasedIdentifier.objects.bulk_create(
        [
            ErasedIdentifier(
                clinic_id=contact.clinic_id, kind=kind, digest=ErasedIdentifier.digest_of(kind, value), erased_at=now
            )
            for kind, value in dict.fromkeys(marks)
        ],
        batch_size=1000,
        update_conflicts=True,
        unique_fields=["clinic", "digest"],
        update_fields=["kind", "erased_at"],
    )


# --- Retention -----------------------------------------------------------------------------------------


@dataclass
class Purged:
    messages: int = 0
    notes: int = 0
    files: int = 0
    conversations: int = 0
    patients: int = 0
    events: int = 0
    pending_statuses: int = 0


def _purge_transcripts(clinic: Clinic, message_ids: list[int]) -> None:
    """The assistant's transcripts of voice notes go with them: clinical words kept no longer than the audio."""
    rows = Message.objects.filter(pk__in=message_ids, message_type="audio").values_list(
        "pk", "external_id", "conversation_id"
    )
    named = [str(pk) for pk, _, _ in rows] + [external for _, external, _ in rows if external]
    if named:
        ConversationAction.objects.filter(
            conversation_id__in={conversation for _, _, conversation in rows},
            action_type=TRANSCRIBED,
            action_data__message_id__in=named,
        ).delete()


def purge_expired(
    *, clinic: Clinic, batch: int = 1000, progress: Callable[[str, int], None] | None = None, dry_run: bool = False
) -> Purged:
    """Delete what the clinic's retention (`retention_days`) no longer allows to keep: messages (with
    their files) and staff's notes; conversations left with nothing newer (no message, note or clinical
    action); patients left with no conversation and unchanged since; event-log entries and provider
    statuses older than the limit. In batches, each its own transaction: safe to interrupt and to run
    again, which carries on where it stopped. `progress(what, count)` is told after each batch. The
    audit trail is kept (it records acts, not contents)."""
    done = Purged()
    report = progress or (lambda what, count: None)
    try:
        cutoff = timezone.now() - timedelta(days=clinic.retention_days)
    except OverflowError:
        return done  # a retention longer than the calendar: nothing is ever old enough

    old_messages = Message.objects.filter(clinic=clinic, created_at__lt=cutoff)
    old_notes = Note.objects.filter(clinic=clinic, created_at__lt=cutoff)
    if dry_run:
        done.messages = old_messages.count()
        done.notes = old_notes.count()
        done.files = MessageAttachment.objects.filter(message__in=old_messages).count()
        done.conversations = _stale_conversations(clinic, cutoff).count()
        done.patients = _stale_patients(clinic, cutoff).count()
        done.events = log.count_before(clinic.pk, cutoff)
        done.pending_statuses = PendingStatus.objects.filter(clinic=clinic, received_at__lt=cutoff).count()
        return done
    while ids := list(old_messages.order_by("pk").values_list("pk", flat=True)[:batch]):
        with transaction.atomic():
            files = list(MessageAttachment.objects.filter(message_id__in=ids))
            _purge_transcripts(clinic, ids)
            Message.objects.filter(pk__in=ids).delete()
            delete_on_commit(files)
        done.messages += len(ids)
        done.files += len(files)
        report("messages", done.messages)
    while ids := list(old_notes.order_by("pk").values_list("pk", flat=True)[:batch]):
        Note.objects.filter(pk__in=ids).delete()
        done.notes += len(ids)
        report("notes", done.notes)
    for ids in _locked_batches(_stale_conversations(clinic, cutoff), batch):
        Conversation.objects.filter(pk__in=ids).delete()
        for conversation_id in ids:
            events.publish_conversation_deleted(clinic.pk, conversation_id)  # open screens drop it
        done.conversations += len(ids)
        report("conversations", done.conversations)
    for ids in _locked_batches(_stale_patients(clinic, cutoff), batch):
        Contact.objects.filter(pk__in=ids).delete()
        done.patients += len(ids)
        report("patients", done.patients)
    while count := log.delete_before(clinic.pk, cutoff, batch):
        done.events += count
        report("events", done.events)
    old_statuses = PendingStatus.objects.filter(clinic=clinic, received_at__lt=cutoff)
    while ids := list(old_statuses.order_by("pk").values_list("pk", flat=True)[:batch]):
        PendingStatus.objects.filter(pk__in=ids).delete()
        done.pending_statuses += len(ids)
        report("pending_statuses", done.pending_statuses)
    if any(asdict(done).values()):
        record_audit(clinic_id=clinic.pk, actor=None, action="retention.purged", obj=clinic, detail=asdict(done))
    return done


def _locked_batches(rows, batch: int) -> Iterator[list[int]]:
    """The ids of `rows`, `batch` at a time, each batch chosen and locked in the transaction its caller
    deletes it in: a row someone is writing to now (locked) is skipped, and checked again next time."""
    while True:
        with transaction.atomic():
            ids = list(rows.select_for_update(skip_locked=True).order_by("pk").values_list("pk", flat=True)[:batch])
            if not ids:
                return
            yield ids


def _stale_conversations(clinic: Clinic, cutoff):
    """Conversations with no activity since the cutoff and no message from after it: nothing of them is left
    once the older messages go."""
    return (
        Conversation.objects.filter(clinic=clinic, updated_at__lt=cutoff)
        .exclude(Exists(Message.objects.filter(conversation=OuterRef("pk"), created_at__gte=cutoff)))
        .exclude(Exists(ConversationAction.objects.filter(conversation=OuterRef("pk"), created_at__gte=cutoff)))
        .exclude(Exists(Note.objects.filter(conversation=OuterRef("pk"), created_at__gte=cutoff)))
    )


def _stale_patients(clinic: Clinic, cutoff):
    """Patients with no conversation left, unchanged since the cutoff: nothing keeps them."""
    return Contact.objects.filter(clinic=clinic, updated_at__lt=cutoff).exclude(
        Exists(Conversation.objects.filter(contact=OuterRef("pk")))
    )
