"""The facts the reports read (models.reports), written by the actions as things happen, inside their
transactions: an attendance opened, the patient waiting, the first reply (by staff or the assistant), a
resolution; and each hour's messages. None of them is an action of its own: they are the actions' record.

The conversation's `awaiting_since` is kept here too — set by the patient's message, cleared by a reply or
a resolution — and saved by the calling action with its other fields (the names it returns)."""

from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import connection, transaction
from django.db.models import BooleanField, ExpressionWrapper, F, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from conversations import clinic_hours, read_cache
from conversations.models import ActivityFact, Conversation, ConversationFact, Message, Responder
from conversations.models.reports import FIRST_RESPONSE_FIELDS

COUNTERS = ("inbound", "staff_replies", "assistant_replies", "auto_replies", "opened", "resolved")


def hour_of(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def count_activity(clinic_id: int, at: datetime, *, user_id: int = 0, shard: int = 0, **counts: int) -> None:
    """Add to the counters of the clinic's hour of `at` (one statement: insert, or add to the row)."""
    table = connection.ops.quote_name(ActivityFact._meta.db_table)
    values = [counts.get(name, 0) for name in COUNTERS]
    added = ", ".join(f"{name} = {table}.{name} + excluded.{name}" for name in COUNTERS)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (clinic_id, hour, user_id, shard, {', '.join(COUNTERS)}) "
            f"VALUES (%s, %s, %s, %s, {', '.join(['%s'] * len(COUNTERS))}) "
            f"ON CONFLICT (clinic_id, hour, user_id, shard) DO UPDATE SET {added}",
            [clinic_id, hour_of(at), user_id, shard, *values],
        )


def _unresolved(conversation: Conversation):
    return ConversationFact.objects.filter(conversation_id=conversation.pk, resolved_at__isnull=True)


def opened(conversation: Conversation, at: datetime) -> None:
    """The conversation was created or reopened at `at`: a new attendance begins (unless one is running)."""
    if not _unresolved(conversation).exists():
        ConversationFact.objects.create(clinic_id=conversation.clinic_id, conversation_id=conversation.pk, opened_at=at)
        count_activity(conversation.clinic_id, at, opened=1)


def patient_wrote(conversation: Conversation, at: datetime, *, shard: int = 0, awaits: bool = True) -> None:
    """The patient's message at `at`: counted, and (unless it asks for nothing: a reaction) the conversation
    awaits an answer from then, if it did not already. Set in the database itself, as the fast path does:
    a reply committed since the conversation was read must not be overwritten by its stale copy."""
    count_activity(conversation.clinic_id, at, shard=shard, inbound=1)
    if awaits:
        threads = Conversation.objects.filter(pk=conversation.pk)
        threads.update(awaiting_since=Coalesce("awaiting_since", Value(at)))
        conversation.awaiting_since = threads.values_list("awaiting_since", flat=True).get()  # locked: ours


def replied(conversation: Conversation, at: datetime, *, by: str, user_id: int | None = None) -> list[str]:
    """The clinic answered at `at` (staff, `user_id` if known, or the assistant): the attendance's first
    response if the patient was waiting for one; nothing awaits an answer any more. Returns the fields to
    save. The automatic away message is no answer: see `auto_replied`."""
    staff = by == Responder.STAFF
    count_activity(
        conversation.clinic_id,
        at,
        user_id=(user_id or 0) if staff else 0,
        staff_replies=int(staff),
        assistant_replies=int(not staff),
    )
    # Locked, and written field by field: a resolution or another reply committing meanwhile is kept.
    fact = _unresolved(conversation).select_for_update().order_by("-opened_at", "-id").first()
    if fact is None:  # a thread older than the reports, or opened by a notice: its attendance starts now
        opened_at = conversation.awaiting_since or at
        fact = ConversationFact.objects.create(
            clinic_id=conversation.clinic_id, conversation_id=conversation.pk, opened_at=opened_at
        )
        count_activity(conversation.clinic_id, opened_at, opened=1)
    waiting, fields = conversation.awaiting_since, ["staff_replies" if staff else "assistant_replies"]
    if fact.first_response_at is None and waiting is not None:
        answered = max(at, waiting)
        fact.waiting_since = waiting
        fact.first_response_at = answered
        fact.first_response_by = by
        fact.first_responder_id = user_id if staff else None
        fact.first_response_seconds = (answered - waiting).total_seconds()
        fact.first_response_business_seconds = clinic_hours.of(conversation.clinic_id).business_seconds(
            waiting, answered
        )
        fields += FIRST_RESPONSE_FIELDS
    setattr(fact, fields[0], F(fields[0]) + 1)
    fact.save(update_fields=fields)
    if waiting is None:
        return []
    conversation.awaiting_since = None
    return ["awaiting_since"]


def auto_replied(conversation: Conversation, at: datetime) -> None:
    """An automatic message (the away message) went out: counted as sent, never as an answer."""
    count_activity(conversation.clinic_id, at, auto_replies=1)


def resolved(conversation: Conversation, *, user_id: int | None) -> list[str]:
    """The conversation was resolved (by a staff member, or by no one: support, a rule): its attendance
    ends, and nothing awaits an answer. Returns the fields to save."""
    now = timezone.now()
    count_activity(conversation.clinic_id, now, user_id=user_id or 0, resolved=1)
    hours = clinic_hours.of(conversation.clinic_id)
    for fact in _unresolved(conversation).select_for_update():
        fact.resolved_at = now
        fact.resolved_by_id = user_id
        fact.resolution_seconds = max(0.0, (now - fact.opened_at).total_seconds())
        fact.resolution_business_seconds = hours.business_seconds(fact.opened_at, now)
        fact.save(update_fields=["resolved_at", "resolved_by_id", "resolution_seconds", "resolution_business_seconds"])
    if conversation.awaiting_since is None:
        return []
    conversation.awaiting_since = None
    return ["awaiting_since"]


# --- Facts rebuilt from the messages a clinic keeps ---------------------------------------------------------

REBUILD_BATCH = 5000
ANSWERS = ("professional", "ai")


@dataclass
class _Attendance:
    """One conversation's history as the rebuild walks it, message by message."""

    conversation_id: int
    opened_at: datetime | None = None
    waiting: datetime | None = None
    fact: ConversationFact | None = None


def rebuild_report_facts(*, clinic_id: int, replace: bool = False, progress=lambda line: None) -> dict:
    """The reports' facts of a clinic's history from the messages it keeps: what happened before the facts
    began to be recorded (an upgrade), or demo data stored in bulk. Adds each hour's messages from before
    the clinic's first counted hour, and one attendance for each conversation that has none (from its first
    message to its resolution, at its last status change), with `awaiting_since` where the patient's last
    message went unanswered. Live recording goes on meanwhile and is left whole; a second run finds nothing
    more to add. `replace` drops every fact of the clinic first — only for a clinic without traffic (demo
    data): facts of messages purged or erased since cannot be rebuilt. Returns the counts written."""
    with transaction.atomic():
        if replace:
            ActivityFact.objects.filter(clinic_id=clinic_id).delete()
            ConversationFact.objects.filter(clinic_id=clinic_id).delete()
        # The facts counted live begin at the clinic's first counted hour: history is what came before.
        cutoff = (
            ActivityFact.objects.filter(clinic_id=clinic_id).order_by("hour").values_list("hour", flat=True).first()
        )
        counted = set(ConversationFact.objects.filter(clinic_id=clinic_id).values_list("conversation_id", flat=True))
        hours = clinic_hours.of(clinic_id)
        conversations = {
            pk: (status, updated_at, awaiting)
            for pk, status, updated_at, awaiting in Conversation.objects.filter(clinic_id=clinic_id).values_list(
                "pk", "status", "updated_at", "awaiting_since"
            )
        }
        resolved_at = _resolution_times(clinic_id)
        activity: dict[tuple[datetime, int], dict[str, int]] = {}
        facts, awaiting, written = [], {}, {"attendances": 0}
        current: _Attendance | None = None

        def count(at: datetime, user_id: int = 0) -> dict[str, int]:
            return activity.setdefault((hour_of(at), user_id), dict.fromkeys(COUNTERS, 0))

        def finish(attendance: _Attendance | None) -> None:
            if attendance is None or attendance.conversation_id in counted:
                return
            fact = attendance.fact or ConversationFact(
                clinic_id=clinic_id, conversation_id=attendance.conversation_id, opened_at=attendance.opened_at
            )
            count(fact.opened_at)["opened"] += 1
            status, updated_at, waiting_now = conversations.get(attendance.conversation_id, ("open", None, None))
            if status == Conversation.Status.RESOLVED:
                fact.resolved_at = max(resolved_at.get(attendance.conversation_id) or updated_at, fact.opened_at)
                fact.resolution_seconds = (fact.resolved_at - fact.opened_at).total_seconds()
                fact.resolution_business_seconds = hours.business_seconds(fact.opened_at, fact.resolved_at)
                if cutoff is None or fact.resolved_at < cutoff:  # a later resolution was counted live
                    count(fact.resolved_at)["resolved"] += 1
            elif attendance.waiting is not None and waiting_now is None:
                awaiting[attendance.conversation_id] = attendance.waiting
            facts.append(fact)
            if len(facts) >= REBUILD_BATCH:  # written as it goes: a million messages never sit in memory
                ConversationFact.objects.bulk_create(facts)
                written["attendances"] += len(facts)
                facts.clear()

        messages = Message.objects.filter(clinic_id=clinic_id, sender_type__in=("patient", *ANSWERS)).exclude(
            message_type="system"
        )
        if cutoff is not None:
            messages = messages.filter(created_at__lt=cutoff)
        rows = (
            messages.annotate(reaction=ExpressionWrapper(Q(metadata__has_key="reaction"), output_field=BooleanField()))
            .order_by("conversation_id", "created_at", "id")
            .values_list("conversation_id", "created_at", "sender_type", "sender_id", "reaction")
        )
        for n, (conversation_id, at, sender_type, sender_id, reaction) in enumerate(rows.iterator(REBUILD_BATCH)):
            if current is None or current.conversation_id != conversation_id:
                finish(current)
                current = _Attendance(conversation_id, opened_at=at)
            if n and n % 100_000 == 0:
                progress(f"{n:,} messages read")
            staff = sender_type == "professional"
            counts = count(at, (sender_id or 0) if staff else 0)
            if sender_type == "patient":
                counts["inbound"] += 1
                if not reaction:
                    current.waiting = current.waiting or at
                continue
            counts["staff_replies" if staff else "assistant_replies"] += 1
            if conversation_id in counted:
                continue
            fact = current.fact = current.fact or ConversationFact(
                clinic_id=clinic_id, conversation_id=conversation_id, opened_at=current.opened_at
            )
            if fact.first_response_at is None and current.waiting is not None:
                fact.waiting_since, fact.first_response_at = current.waiting, at
                fact.first_response_by = Responder.STAFF if staff else Responder.ASSISTANT
                fact.first_responder_id = sender_id if staff else None
                fact.first_response_seconds = (at - current.waiting).total_seconds()
                fact.first_response_business_seconds = hours.business_seconds(current.waiting, at)
            fact.staff_replies += int(staff)
            fact.assistant_replies += int(not staff)
            current.waiting = None
        finish(current)
        ConversationFact.objects.bulk_create(facts, batch_size=REBUILD_BATCH)
        written["attendances"] += len(facts)
        ActivityFact.objects.bulk_create(
            [ActivityFact(clinic_id=clinic_id, hour=h, user_id=user, **c) for (h, user), c in activity.items()],
            batch_size=REBUILD_BATCH,
            # Hours before the first counted one have no rows, but for an old message WhatsApp delivers
            # late, during the rebuild: its hour's count is then this one.
            update_conflicts=True,
            unique_fields=["clinic", "hour", "user_id", "shard"],
            update_fields=list(COUNTERS),
        )
        for conversation_id, since in awaiting.items():
            Conversation.objects.filter(pk=conversation_id, awaiting_since__isnull=True).update(awaiting_since=since)
        read_cache.bump_on_commit([read_cache.clinic_scope(clinic_id)])  # bulk writes send no signals
    return {"attendances": written["attendances"], "hours": len(activity), "awaiting": len(awaiting)}


def _resolution_times(clinic_id: int) -> dict[int, datetime]:
    """When each conversation was last set resolved, from the audit trail."""
    from conversations.models import AuditEvent

    found = {}
    audited = AuditEvent.objects.filter(
        clinic_id=clinic_id, action="conversation.status", object_type="conversation", detail__to="resolved"
    ).values_list("object_id", "at")
    for object_id, at in audited.order_by("at").iterator(chunk_size=REBUILD_BATCH):
        if str(object_id).isdigit():
            found[int(object_id)] = at
    return found
