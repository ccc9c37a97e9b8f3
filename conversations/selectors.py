"""The read path: queries that more than one caller needs, always scoped to one clinic."""

from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection
from django.db.models import (
    BigIntegerField,
    Case,
    Count,
    Exists,
    F,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    TextField,
    Value,
    When,
)
from django.db.models.expressions import RawSQL
from django.db.models.functions import Coalesce

from conversations.models import (
    Clinic,
    Contact,
    Conversation,
    ConversationAction,
    Direction,
    ErasedIdentifier,
    Label,
    Membership,
    Message,
    MessageType,
    Note,
    QuickReply,
    ReadMarker,
    SenderType,
    WhatsAppChannel,
)
from conversations.phones import canonical_phone, digits_of, search_forms

# What counts as unread: what the patient wrote, not WhatsApp's system lines (a number change).
FROM_PATIENT = {"direction": Direction.INBOUND, "sender_type": SenderType.PATIENT}


def membership_for(user: AbstractBaseUser, clinic_id: int) -> Membership | None:
    """The user's membership of the clinic, or None; inactive users have none."""
    if user is None or not user.is_authenticated or not user.is_active:
        return None
    return Membership.objects.select_related("clinic", "user").filter(user=user, clinic_id=clinic_id).first()


def is_member(user: AbstractBaseUser | None, clinic_id: int) -> bool:
    return user is not None and membership_for(user, clinic_id) is not None


def clinics_of(user: AbstractBaseUser) -> QuerySet[Clinic]:
    if not user.is_authenticated or not user.is_active:
        return Clinic.objects.none()
    return Clinic.objects.filter(memberships__user=user).order_by("name")


def memberships_of(user: AbstractBaseUser) -> QuerySet[Membership]:
    if not user.is_authenticated or not user.is_active:
        return Membership.objects.none()
    return Membership.objects.filter(user=user).select_related("clinic").order_by("clinic__name")


# --- Conversations -----------------------------------------------------------------------------------


def conversations_by_activity(clinic: Clinic) -> QuerySet[Conversation]:
    """The clinic's conversations, newest activity first, with their last message; nothing per user.

    A conversation without messages sorts by when it was created (`activity_at`), as the index does.
    """
    # The preview is the latest message anyone wrote; a system line (a number change) is not one.
    last_message = (
        Message.objects.filter(conversation=OuterRef("pk"))
        .exclude(message_type=MessageType.SYSTEM)
        .order_by("-created_at", "-id")
    )
    return (
        Conversation.objects.filter(clinic=clinic)
        .select_related("contact", "assignee")
        .annotate(
            last_message_content=Subquery(
                last_message.annotate(
                    shown=Case(  # a message the patient deleted is not previewed
                        When(metadata__has_key="revoked_at", then=Value(REVOKED_PREVIEW)),
                        When(metadata__has_key="revoke", then=Value(REVOKED_PREVIEW)),
                        default=F("content"),
                        output_field=TextField(),
                    )
                ).values("shown")[:1]
            ),
            last_message_type=Subquery(last_message.values("message_type")[:1]),
            last_message_direction=Subquery(last_message.values("direction")[:1]),
            last_message_sender_type=Subquery(last_message.values("sender_type")[:1]),
            last_message_sender_id=Subquery(last_message.values("sender_id")[:1]),
            activity_at=Coalesce("last_message_at", "created_at"),
        )
        .order_by(F("activity_at").desc(), "-id")
    )


def _read_up_to(user: AbstractBaseUser, conversation_ref) -> Coalesce:
    marker = ReadMarker.objects.filter(conversation=conversation_ref, user=user).values("last_read_message_id")[:1]
    return Coalesce(Subquery(marker), 0, output_field=BigIntegerField())


def conversation_list_for(clinic: Clinic, user: AbstractBaseUser) -> QuerySet[Conversation]:
    """The list with the user's own unread count on each row, in one query whatever the number of rows."""
    unread = (
        Message.objects.filter(conversation=OuterRef("pk"), id__gt=OuterRef("read_up_to"), **FROM_PATIENT)
        .order_by()
        .values("conversation")
        .annotate(n=Count("id"))
        .values("n")
    )
    return conversations_by_activity(clinic).annotate(
        read_up_to=_read_up_to(user, OuterRef("pk")),
        unread_count=Coalesce(Subquery(unread), 0),
    )


def unread_counts_for(user: AbstractBaseUser, conversation_ids: list[int]) -> dict[int, int]:
    """Inbound messages after the user's read marker, for each conversation given; one statement (asked on
    every list request, so written out rather than composed by the ORM each time), each count read from
    the patient-message index (message_from_patient) alone."""
    if not conversation_ids:
        return {}
    quote = connection.ops.quote_name
    messages, markers = quote(Message._meta.db_table), quote(ReadMarker._meta.db_table)
    placeholders = ", ".join(["%s"] * len(conversation_ids))
    sql = (
        f"SELECT c.id, (SELECT COUNT(*) FROM {messages} m WHERE m.conversation_id = c.id "
        "AND m.direction = %s AND m.sender_type = %s AND m.id > COALESCE("
        f"(SELECT r.last_read_message_id FROM {markers} r WHERE r.user_id = %s AND r.conversation_id = c.id), 0)) "
        f"FROM {quote(Conversation._meta.db_table)} c WHERE c.id IN ({placeholders})"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [FROM_PATIENT["direction"], FROM_PATIENT["sender_type"], user.pk, *conversation_ids])
        return {pk: n for pk, n in cursor.fetchall() if n}


def conversation_page(
    clinic: Clinic,
    *,
    status: str | None = None,
    assignee_id: int | None = None,
    unassigned: bool = False,
    q: str | None = None,
    after: tuple[datetime, int] | None = None,
    limit: int = 50,
    ids: list[int] | None = None,
    label_id: int | None = None,
    snoozed: bool | None = None,
    awaiting: bool = False,
) -> list[Conversation]:
    """One page of the list, `limit + 1` rows so the caller knows whether another page follows.

    `q` matches the contact (name, username, phone, user id) or the text of any message; `ids` keeps
    only those conversations (a screen asking whether a row still matches its filters). `snoozed`: only
    snoozed ones (True) or none (False); an open list leaves the snoozed out unless asked. `awaiting`:
    only those whose patient awaits the clinic's answer, the longest wait first (`after` is then the
    position in that order: (awaiting_since, id)).
    """
    rows = conversations_by_activity(clinic).prefetch_related("labels")
    if ids is not None:
        rows = rows.filter(pk__in=ids)
    if status:
        rows = rows.filter(status=status)
    if snoozed is None and status == Conversation.Status.OPEN:
        snoozed = False
    if snoozed is not None:
        rows = rows.filter(snoozed_until__isnull=not snoozed)
    if label_id is not None:
        rows = rows.filter(labels__id=label_id)
    if unassigned:
        rows = rows.filter(assignee__isnull=True)
    elif assignee_id is not None:
        rows = rows.filter(assignee_id=assignee_id)
    if q:
        rows = rows.filter(_contact_matches(q, prefix="contact__") | _said_in(clinic, q))
    if awaiting:
        rows = rows.filter(awaiting_since__isnull=False).exclude(status=Conversation.Status.RESOLVED)
        rows = rows.order_by("awaiting_since", "id")
        if after is not None:
            at, pk = after
            rows = rows.filter(Q(awaiting_since__gt=at) | Q(awaiting_since=at, id__gt=pk))
    elif after is not None:
        at, pk = after
        rows = rows.filter(Q(activity_at__lt=at) | Q(activity_at=at, id__lt=pk))
    return list(rows[: limit + 1])


def _said_in(clinic: Clinic, q: str) -> Q:
    """Conversations with a message that says `q`: by the full-text index on PostgreSQL (stemmed, accents
    folded: conversations/search.py), by plain matching elsewhere."""
    if connection.vendor == "postgresql":
        said = RawSQL(
            "SELECT conversation_id FROM conversations_message WHERE clinic_id = %s "
            "AND search_vector @@ websearch_to_tsquery('public.pt_unaccent', %s)",
            (clinic.pk, q),
        )
        return Q(pk__in=said)
    return Q(Exists(Message.objects.filter(conversation=OuterRef("pk"), content__icontains=q)))


def _contact_matches(q: str, prefix: str = "") -> Q:
    """A name, WhatsApp profile name or username containing `q`, a phone containing its digits, or the
    exact WhatsApp user id."""
    match = Q(**{f"{prefix}name__icontains": q}) | Q(**{f"{prefix}profile_name__icontains": q})
    if username := q.strip().lstrip("@"):
        match |= Q(**{f"{prefix}whatsapp_username__icontains": username})
    if q.strip():
        match |= Q(**{f"{prefix}whatsapp_user_id": q.strip()})
    digits = digits_of(q)
    if len(digits) >= 3:  # either form of a Brazilian mobile finds it (conversations.phones)
        for form in search_forms(digits):
            match |= Q(**{f"{prefix}phone__contains": form}) | Q(**{f"{prefix}whatsapp_id__contains": form})
    return match


def conversation_of(clinic: Clinic, conversation_id: int) -> Conversation | None:
    return (
        Conversation.objects.select_related("contact", "assignee")
        .prefetch_related("labels")
        .filter(clinic=clinic, pk=conversation_id)
        .first()
    )


# --- Messages and timeline ---------------------------------------------------------------------------


def _timeline(conversation: Conversation) -> QuerySet[Message]:
    return (
        Message.objects.filter(conversation=conversation)
        .select_related("sender")
        .prefetch_related("attachments")
        .order_by("-created_at", "-id")
    )


def message_window(
    conversation: Conversation, *, before: Message | None = None, after: Message | None = None, limit: int = 50
) -> tuple[list[Message], bool]:
    """Up to `limit` messages, oldest first: the latest, those before one message, or those after it.

    Returns the messages and whether more exist in the direction asked.
    """
    messages = _timeline(conversation)
    if before is not None:
        messages = messages.filter(
            Q(created_at__lt=before.created_at) | Q(created_at=before.created_at, id__lt=before.pk)
        )
    if after is not None:
        messages = messages.filter(
            Q(created_at__gt=after.created_at) | Q(created_at=after.created_at, id__gt=after.pk)
        ).order_by("created_at", "id")
        page = list(messages[: limit + 1])
        return page[:limit], len(page) > limit
    page = list(messages[: limit + 1])
    return page[:limit][::-1], len(page) > limit


def message_in(conversation: Conversation, message_id: int) -> Message | None:
    return Message.objects.filter(conversation=conversation, pk=message_id).first()


def actions_of(conversation: Conversation) -> list[ConversationAction]:
    return list(ConversationAction.objects.filter(conversation=conversation).order_by("created_at", "id"))


def read_up_to(user: AbstractBaseUser, conversation_id: int) -> int | None:
    return (
        ReadMarker.objects.filter(user=user, conversation_id=conversation_id)
        .values_list("last_read_message_id", flat=True)
        .first()
    )


def staff_of(clinic: Clinic) -> list[Membership]:
    """The clinic's active staff, by name: who a conversation can be assigned to."""
    return list(
        Membership.objects.filter(clinic=clinic, user__is_active=True)
        .select_related("user")
        .order_by("user__first_name", "user__last_name", "user__username")
    )


def labels_of(clinic: Clinic) -> list[Label]:
    return list(Label.objects.filter(clinic=clinic).order_by("name"))


def notes_of(conversation: Conversation) -> QuerySet[Note]:
    """The conversation's internal notes, oldest first, with their authors and mentions."""
    return (
        Note.objects.filter(conversation=conversation)
        .select_related("author")
        .prefetch_related("mentions")
        .order_by("created_at", "id")
    )


REVOKED_PREVIEW = "🚫 Mensagem apagada"


def reply_window_ends_at(conversation: Conversation, latest: list[Message] | None = None) -> datetime | None:
    """When WhatsApp's window for free text closes: REPLY_WINDOW_HOURS after the patient's latest message
    (None: the patient never wrote, so only a template may start the conversation). `latest`: the
    conversation's newest messages, already read (oldest first); one of the patient's among them saves
    the query."""
    from_patient = [m for m in latest or [] if m.direction == Direction.INBOUND and m.sender_type == SenderType.PATIENT]
    if from_patient:
        latest_at = max(from_patient, key=lambda m: m.pk).created_at
    else:
        latest_at = (
            Message.objects.filter(
                conversation=conversation, direction=Direction.INBOUND, sender_type=SenderType.PATIENT
            )
            .order_by("-id")
            .values_list("created_at", flat=True)
            .first()
        )
    return latest_at + timedelta(hours=settings.REPLY_WINDOW_HOURS) if latest_at is not None else None


def notes_between(conversation: Conversation, first: Message | None, anchor: Message | None) -> list[Note]:
    """The notes a window of the timeline shows: from its first message on (None: from the beginning) to
    before `anchor` (None: now)."""
    notes = notes_of(conversation)
    if first is not None:
        notes = notes.filter(created_at__gte=first.created_at)
    if anchor is not None:
        notes = notes.filter(created_at__lt=anchor.created_at)
    return list(notes)


def quick_replies_of(clinic: Clinic) -> QuerySet[QuickReply]:
    """The clinic's quick replies, by short code."""
    return QuickReply.objects.filter(clinic=clinic).order_by("shortcut")


def other_conversations_of(conversation: Conversation, limit: int = 10) -> list[Conversation]:
    """The patient's other threads in the clinic, newest first (for the patient panel)."""
    return list(
        Conversation.objects.filter(clinic_id=conversation.clinic_id, contact_id=conversation.contact_id)
        .exclude(pk=conversation.pk)
        .order_by("-last_message_at", "-id")[:limit]
    )


def was_erased(
    clinic_id: int, *, external_id: str | None = None, identifiers=(), happened_at: datetime | None = None
) -> bool:
    """Whether a notification belongs to an erased patient (LGPD): its WhatsApp message id was erased, or it
    names a patient identifier (phone, WhatsApp user id) erased after it happened, i.e. an old notification
    Meta delivers again. The same patient writing after the erasure is a new patient."""
    digests = set(ErasedIdentifier.patient_digests(identifiers))
    if external_id:
        digests.update(ErasedIdentifier.digests_of(ErasedIdentifier.Kind.MESSAGE, external_id))
    if not digests:
        return False
    for kind, erased_at in ErasedIdentifier.objects.filter(clinic_id=clinic_id, digest__in=digests).values_list(
        "kind", "erased_at"
    ):
        if kind == ErasedIdentifier.Kind.MESSAGE or (happened_at is not None and happened_at <= erased_at):
            return True
    return False


def message_count_of(contact: Contact) -> int:
    """How many messages the patient's conversations hold (what a merge's confirmation names)."""
    return Message.objects.filter(clinic_id=contact.clinic_id, conversation__contact=contact).count()


def duplicate_patients(clinic: Clinic) -> list[tuple[int, list[int]]]:
    """Records of the clinic that are one patient by the canonical number (conversations.phones): the record
    to keep — the one holding the canonical phone, else the oldest — and the ids to merge into it. Found by
    phone, or for a record kept only by its WhatsApp id (one written before the canonical number), by that."""
    groups: dict[str, list[tuple[bool, int]]] = {}
    rows = Contact.objects.filter(clinic=clinic).exclude(status=Contact.Status.ERASED)
    for pk, phone, whatsapp_id in rows.values_list("pk", "phone", "whatsapp_id").order_by("pk").iterator():
        number = canonical_phone(phone or whatsapp_id)
        if number:
            groups.setdefault(number, []).append((phone != number, pk))  # the canonical phone's holder first
    return [
        (min(members)[1], sorted(pk for _, pk in members if pk != min(members)[1]))
        for members in groups.values()
        if len(members) > 1
    ]


def has_whatsapp_number(clinic_id: int) -> bool:
    """Whether the clinic has a WhatsApp number to send from: a real one, or one explicitly simulated (the
    demo). Without one a reply would reach nobody, so it is refused before it is stored."""
    return WhatsAppChannel.objects.filter(clinic_id=clinic_id).exists()


def has_real_channel(clinic_id: int) -> bool:
    """Whether the clinic is connected to WhatsApp for real (not the simulator)."""
    return WhatsAppChannel.objects.filter(clinic_id=clinic_id, simulated=False).exists()


# --- Contacts ----------------------------------------------------------------------------------------


def contact_page(
    clinic: Clinic, *, q: str | None = None, after_id: int | None = None, limit: int = 50
) -> list[Contact]:
    contacts = Contact.objects.filter(clinic=clinic).order_by("-id")
    if q:
        contacts = contacts.filter(_contact_matches(q))
    if after_id is not None:
        contacts = contacts.filter(id__lt=after_id)
    return list(contacts[: limit + 1])


def latest_conversation_for(clinic: Clinic, *, phone: str = "", whatsapp_user_id: str = "") -> Conversation | None:
    """The patient's current thread, found as a message would find them (by phone, else by WhatsApp user
    id or parent id): the unresolved one, else the latest."""
    digits = canonical_phone(digits_of(phone))
    user_id = (whatsapp_user_id or "").strip()
    for patient in (
        Q(contact__phone=digits) if digits else None,
        Q(contact__whatsapp_user_id=user_id) if user_id else None,
        Q(contact__whatsapp_parent_user_id=user_id) if user_id else None,
    ):
        if patient is None:
            continue
        threads = Conversation.objects.filter(patient, clinic=clinic).order_by("-last_message_at", "-id")
        found = threads.exclude(status=Conversation.Status.RESOLVED).first() or threads.first()
        if found is not None:
            return found
    return None


def contact_of(clinic: Clinic, contact_id: int) -> Contact | None:
    return Contact.objects.filter(clinic=clinic, pk=contact_id).first()
