"""Actions staff take on a patient's record: correcting it (name, e-mail, observations), and merging two
records of one patient into one (DESIGN §12: one patient, one history)."""

from dataclasses import dataclass

from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone

from conversations import events, read_cache
from conversations.actions.audit import record_audit
from conversations.errors import InvalidInput, NotAMember, WrongClinic
from conversations.models import Contact, Conversation, ConversationAction, ConversationFact, Message, Note, ReadMarker
from conversations.models.reports import FIRST_RESPONSE_FIELDS
from conversations.phones import canonical_phone
from conversations.selectors import is_member, message_count_of
from realtime import log

MAX_NAME_CHARS = 200
MAX_NOTES_CHARS = 4000
CORRECTABLE = ("name", "email", "notes")


@transaction.atomic
def correct_patient_record(
    *, contact: Contact, actor: AbstractBaseUser, changes: dict[str, str], ip: str | None = None
) -> tuple[Contact, list[str]]:
    """Staff correct what the clinic knows of a patient: the name it calls them (WhatsApp's profile name is
    kept apart and never overwrites it), their e-mail, and the observations about them. Returns the patient
    and the fields that changed; every open screen of theirs is told, and the change is audited by field
    name (never by value)."""
    if not is_member(actor, contact.clinic_id):
        raise NotAMember("Only staff of the patient's clinic can correct their record.")
    unknown = sorted(set(changes) - set(CORRECTABLE))
    if unknown:
        raise InvalidInput(f"{unknown[0]!r} is not part of a patient's record staff correct.", field=unknown[0])
    cleaned = {field: (value or "").strip() for field, value in changes.items()}
    if len(cleaned.get("name", "")) > MAX_NAME_CHARS:
        raise InvalidInput(f"A name holds at most {MAX_NAME_CHARS} characters.", field="name")
    if len(cleaned.get("notes", "")) > MAX_NOTES_CHARS:
        raise InvalidInput(f"The observations hold at most {MAX_NOTES_CHARS} characters.", field="notes")
    if cleaned.get("email"):
        try:
            validate_email(cleaned["email"])
        except ValidationError:
            raise InvalidInput(f"{cleaned['email']!r} is not an e-mail address.", field="email") from None
    # Locked: two screens correcting at once are applied one after the other, each on the other's result.
    contact = Contact.objects.select_for_update(no_key=True).get(pk=contact.pk)
    if contact.status == Contact.Status.ERASED:
        raise InvalidInput("This patient was erased (LGPD): their record is not kept any more.", field="contact")
    changed = sorted(field for field, value in cleaned.items() if getattr(contact, field) != value)
    if not changed:
        return contact, []
    for field in changed:
        setattr(contact, field, cleaned[field])
    contact.updated_at = timezone.now()
    contact.save(update_fields=[*changed, "updated_at"])
    record_audit(
        clinic_id=contact.clinic_id,
        actor=actor,
        action="contact.corrected",
        obj=contact,
        detail={"fields": changed},
        ip=ip,
    )
    for conversation in Conversation.objects.filter(clinic_id=contact.clinic_id, contact=contact).select_related(
        "contact", "assignee"
    ):
        events.publish_conversation_updated(conversation, ["contact"])
    return contact, changed


# --- Merging two records of one patient ----------------------------------------------------------------

IDENTIFIERS = ("phone", "whatsapp_id", "whatsapp_user_id", "whatsapp_parent_user_id", "whatsapp_username")


@dataclass(frozen=True)
class Merged:
    kept_id: int
    merged_id: int
    conversations: int  # the merged-away patient's conversations, now the kept one's
    messages: int
    folded: dict[int, int]  # a merged-away open conversation → the kept patient's open one it joined

    def as_dict(self) -> dict:
        return {
            "kept": self.kept_id,
            "merged": self.merged_id,
            "conversations": self.conversations,
            "messages": self.messages,
        }


def merge_preview(kept: Contact, merged: Contact) -> dict:
    """Who would be merged into whom, with their message counts, and what of the merged-away record the kept
    one cannot take (a second phone or WhatsApp id: a patient has one): what a confirmation names."""

    def described(contact: Contact) -> dict:
        count = message_count_of(contact)
        return {
            "id": contact.pk,
            "display_name": contact.display_name,
            "phone": contact.phone_display,
            "messages": count,
        }

    return {"kept": described(kept), "merged": described(merged), "dropped": _dropped(kept, merged)}


def _dropped(kept: Contact, merged: Contact) -> list[str]:
    """The merged-away record's identifiers that differ from the kept record's own (not taken: kept apart)."""
    return [
        field
        for field in ("phone", "whatsapp_user_id", "whatsapp_parent_user_id")
        if getattr(merged, field) and getattr(kept, field) and getattr(merged, field) != getattr(kept, field)
    ]


@transaction.atomic
def merge_patients(*, kept: Contact, merged: Contact, actor: AbstractBaseUser | None, ip: str | None = None) -> Merged:
    """Make two records of one patient one, in one transaction: the merged-away patient's conversations —
    messages, notes, clinical actions, labels, read marks and their logged events with them — become the kept
    patient's (an open one joins the kept patient's open one, so the patient keeps one open thread), and their
    WhatsApp ids, phone, e-mail and observations fill what the kept record lacks (a second phone or id of
    theirs is not kept: merge_preview names it). The merged-away record goes. Open screens are told (a joined
    conversation's screens move to the one it joined); audited as `contact.merged` with ids and counts, no
    patient data. Patients of two clinics are never merged."""
    if kept.clinic_id != merged.clinic_id:
        raise WrongClinic("No such patient in this clinic.", field="merge_id")
    if kept.pk == merged.pk:
        raise InvalidInput("A patient cannot be merged with themselves.", field="merge_id")
    if actor is not None and not actor.is_superuser and not is_member(actor, kept.clinic_id):
        raise NotAMember("Only the clinic's staff or support can merge its patients.")
    # Their conversations locked first, then the two records, in id order: the order an inbound message
    # takes (its one statement locks the conversation, then shares the patient), so the two never deadlock.
    threads = Conversation.objects.filter(clinic_id=kept.clinic_id, contact_id__in=[kept.pk, merged.pk])
    list(threads.select_for_update().order_by("pk").values_list("pk", flat=True))
    locked = {c.pk: c for c in Contact.objects.select_for_update().filter(pk__in=[kept.pk, merged.pk]).order_by("pk")}
    if len(locked) != 2:
        raise WrongClinic("No such patient in this clinic.", field="merge_id")
    kept, merged = locked[kept.pk], locked[merged.pk]
    if Contact.Status.ERASED in (kept.status, merged.status):
        raise InvalidInput("An erased patient (LGPD) cannot be merged.", field="merge_id")
    messages = message_count_of(merged)
    open_thread = (
        threads.filter(contact=kept, channel=Conversation.Channel.WHATSAPP)
        .exclude(status=Conversation.Status.RESOLVED)
        .first()
    )
    moved, folded = [], {}
    for conversation in threads.filter(contact=merged).order_by("pk"):
        unresolved = conversation.status != Conversation.Status.RESOLVED
        if open_thread is not None and unresolved and conversation.channel == open_thread.channel:
            folded[conversation.pk] = open_thread.pk
            _fold(conversation, into=open_thread)
        else:
            conversation.contact, conversation.updated_at = kept, timezone.now()
            conversation.save(update_fields=["contact", "updated_at"])
            moved.append(conversation)
    _take_identifiers(kept, merged)
    merged_id = merged.pk
    # The admin's history of the merged-away record is the kept one's now (an erasure of theirs finds it).
    LogEntry.objects.filter(content_type__model="contact", object_id=str(merged_id)).update(object_id=str(kept.pk))
    merged.delete()
    record_audit(
        clinic_id=kept.clinic_id,
        actor=actor,
        action="contact.merged",
        obj=kept,
        detail={"merged_id": merged_id, "conversations": len(moved) + len(folded), "messages": messages},
        ip=ip,
    )
    read_cache.bump_on_commit([read_cache.list_scope(kept.clinic_id)])
    for conversation in Conversation.objects.filter(pk__in=[c.pk for c in moved]).select_related("contact", "assignee"):
        events.publish_conversation_updated(conversation, ["contact"])
    for gone, into in folded.items():
        events.publish_conversation_merged(kept.clinic_id, gone, into)
    if open_thread is not None and folded:
        open_thread = Conversation.objects.select_related("contact", "assignee").get(pk=open_thread.pk)
        events.publish_conversation_updated(open_thread, ["contact", "merged"])
    return Merged(kept.pk, merged_id, len(moved) + len(folded), messages, folded)


def _fold(conversation: Conversation, *, into: Conversation) -> None:
    """Move everything of `conversation` into `into` (both of one patient now), then remove it. Its state
    joins in the way nothing is missed: staff answering wins over the assistant, open over pending, awake
    over snoozed; a user's read mark is set so that no message of either is shown read that they had not."""
    _join_read_marks(conversation, into)
    Message.objects.filter(conversation=conversation).update(conversation=into)
    Note.objects.filter(conversation=conversation).update(conversation=into)
    ConversationAction.objects.filter(conversation=conversation).update(conversation=into)
    _join_attendances(conversation, into)
    log.reassign(into.clinic_id, conversation.pk, into.pk)
    LogEntry.objects.filter(content_type__model="conversation", object_id=str(conversation.pk)).update(
        object_id=str(into.pk)
    )
    into.labels.add(*conversation.labels.all())
    if conversation.last_message_at and (
        into.last_message_at is None or conversation.last_message_at > into.last_message_at
    ):
        into.last_message_at = conversation.last_message_at
    if into.assignee_id is None and conversation.assignee_id is not None:
        into.assignee_id = conversation.assignee_id
    if conversation.answered_by == Conversation.AnsweredBy.STAFF:
        into.answered_by = Conversation.AnsweredBy.STAFF
    if conversation.status == Conversation.Status.OPEN:
        into.status = Conversation.Status.OPEN
    if conversation.snoozed_until is None:
        into.snoozed_until = None
    into.whatsapp_number_id = into.whatsapp_number_id or conversation.whatsapp_number_id
    waits = [at for at in (into.awaiting_since, conversation.awaiting_since) if at is not None]
    into.awaiting_since = min(waits, default=None)  # the patient has waited since the earlier of the two
    sent = [at for at in (into.away_sent_for, conversation.away_sent_for) if at is not None]
    into.away_sent_for = max(sent, default=None)  # the later closed period's away message went already
    into.updated_at = timezone.now()
    into.save(
        update_fields=[
            "last_message_at",
            "assignee",
            "answered_by",
            "status",
            "snoozed_until",
            "whatsapp_number_id",
            "awaiting_since",
            "away_sent_for",
            "updated_at",
        ]
    )
    read_cache.bump_on_commit([read_cache.detail_scope(into.pk), read_cache.detail_scope(conversation.pk)])
    conversation.delete()


def _join_attendances(conversation: Conversation, into: Conversation) -> None:
    """The reports' attendances of `conversation` become `into`'s; of the two running ones (one each side) the
    earlier stays, with the other's replies and, if it had none, its first response: one conversation, one
    attendance at a time."""
    ConversationFact.objects.filter(conversation_id=conversation.pk).update(conversation_id=into.pk)
    running = list(
        ConversationFact.objects.select_for_update()
        .filter(conversation_id=into.pk, resolved_at__isnull=True)
        .order_by("opened_at", "pk")
    )
    if len(running) < 2:
        return
    kept, others = running[0], running[1:]
    for other in others:
        kept.staff_replies += other.staff_replies
        kept.assistant_replies += other.assistant_replies
        if other.first_response_at is not None and (
            kept.first_response_at is None or other.first_response_at < kept.first_response_at
        ):
            for field in FIRST_RESPONSE_FIELDS:
                setattr(kept, field, getattr(other, field))
    kept.save()
    ConversationFact.objects.filter(pk__in=[other.pk for other in others]).delete()


def _join_read_marks(conversation: Conversation, into: Conversation) -> None:
    """Unread counts the patient's messages after a user's mark: once the two timelines are one, each user's
    mark moves to just before the first message that was unread for them on either side (a side they never
    opened is all unread), so no message is shown read that they had not read."""
    sides = (conversation, into)
    from_patient = Message.objects.filter(direction="inbound", sender_type="patient")
    marks: dict[int, dict[int, ReadMarker]] = {}
    for marker in ReadMarker.objects.select_for_update().filter(conversation__in=sides):
        marks.setdefault(marker.user_id, {})[marker.conversation_id] = marker
    for user_id, theirs in marks.items():
        firsts = []
        for side in sides:
            read_to = theirs[side.pk].last_read_message_id if side.pk in theirs else None
            unread = from_patient.filter(conversation=side, pk__gt=read_to or 0).order_by("pk")
            if (first := unread.values_list("pk", flat=True).first()) is not None:
                firsts.append(first)
        if firsts:
            before = Message.objects.filter(conversation__in=sides, pk__lt=min(firsts)).order_by("-pk")
            read_to = before.values_list("pk", flat=True).first()
        else:  # nothing unread on either side: read to the further of their marks
            read_to = max((m.last_read_message_id or 0 for m in theirs.values()), default=0) or None
        marker = theirs.pop(into.pk, None) or theirs.pop(conversation.pk)
        for other in theirs.values():
            other.delete()
        marker.conversation, marker.last_read_message_id, marker.updated_at = into, read_to, timezone.now()
        marker.save(update_fields=["conversation", "last_read_message", "updated_at"])
        read_cache.bump_on_commit([read_cache.reads_scope(user_id)])


def _take_identifiers(kept: Contact, merged: Contact) -> None:
    """What the kept record lacks, from the merged-away one (freed there first: each is unique per clinic).
    WhatsApp's own form of the number wins over a copy of the phone: a wa_id without the ninth digit is
    certainly WhatsApp's, so replies go there."""
    taken = {
        field: getattr(merged, field) for field in IDENTIFIERS if getattr(merged, field) and not getattr(kept, field)
    }
    theirs = merged.whatsapp_id
    if (
        theirs
        and kept.whatsapp_id
        and theirs != kept.whatsapp_id
        and canonical_phone(theirs) == canonical_phone(kept.whatsapp_id)
    ):
        if kept.whatsapp_id == canonical_phone(kept.whatsapp_id):  # the kept one is only the canonical form
            taken["whatsapp_id"] = theirs
    if taken:
        for field in taken:
            setattr(merged, field, "")
        merged.save(update_fields=list(taken))
    for field, value in taken.items():
        setattr(kept, field, value)
    for field in ("name", "profile_name", "email"):
        if not getattr(kept, field) and getattr(merged, field):
            setattr(kept, field, getattr(merged, field))
            taken[field] = ""
    if merged.notes and merged.notes not in kept.notes:
        kept.notes = f"{kept.notes}\n\n{merged.notes}".strip()
        taken["notes"] = ""
    kept.updated_at = timezone.now()
    kept.save(update_fields=[*taken, "updated_at"])
