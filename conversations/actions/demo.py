"""Filling an installation with demo clinics, staff and a realistic message history, in bulk.

History is written with bulk inserts, not through the per-message actions, and publishes no events: it is
the past of a clinic, not something happening now, and `--scale` must make a million messages in minutes.
Every row is derived from its index, so running the seeder again adds only what is missing.
"""

import random
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.utils import timezone

from conversations import demo_content as content
from conversations import read_cache
from conversations.actions.reporting import rebuild_report_facts
from conversations.message_templates import SIMULATED
from conversations.models import (
    Clinic,
    Contact,
    Conversation,
    ConversationAction,
    Direction,
    Label,
    Membership,
    Message,
    MessageStatus,
    MessageType,
    QuickReply,
    ReadMarker,
    Role,
    SenderType,
    WhatsAppChannel,
)

CONTACTS_PER_SCALE = 25  # per clinic; with ~40 messages each, --scale 500 gives about 1,000,000 messages
BATCH_CONTACTS = 500
STATUS_CYCLE = ["open"] * 6 + ["pending"] * 2 + ["resolved"] * 2
LAST_OUTBOUND_STATUS = ["read", "read", "delivered", "sent", "pending", "failed", "read", "delivered"]
MEDIA_TYPES = list(content.MEDIA_SAMPLES)


@dataclass
class SeedReport:
    clinics: list[str] = field(default_factory=list)
    staff: list[tuple[str, str]] = field(default_factory=list)  # (username, "role @ clinic, …")
    contacts: int = 0
    messages: int = 0


def demo_phone(area_code: str, index: int) -> str:
    """A mobile number that looks real and is unique per index: the multiplier is prime to 10^8."""
    return f"55{area_code}9{(index * 53242913 + 51234567) % 10**8:08d}"


def seed_demo(*, scale: int = 1, progress: Callable[[str], None] = lambda line: None) -> SeedReport:
    """Create the demo clinics, their staff, and `CONTACTS_PER_SCALE × scale` patients per clinic."""
    if scale < 1:
        raise ValueError("scale must be 1 or more.")
    report = SeedReport()
    staff_by_clinic = _seed_staff(report, _seed_clinics(report))
    now = timezone.now()
    for slug, _name, _tz, area_code in content.CLINICS:
        clinic = Clinic.objects.get(slug=slug)
        wanted = CONTACTS_PER_SCALE * scale
        existing = set(Contact.objects.filter(clinic=clinic).values_list("phone", flat=True))
        missing = [i for i in range(wanted) if demo_phone(area_code, i) not in existing]
        for start in range(0, len(missing), BATCH_CONTACTS):
            batch = missing[start : start + BATCH_CONTACTS]
            report.messages += _seed_batch(clinic, area_code, batch, staff_by_clinic[slug], now)
            report.contacts += len(batch)
            progress(f"{clinic.name}: {min(start + BATCH_CONTACTS, len(missing))}/{len(missing)} new patients")
        report.messages += _seed_patient_without_phone(clinic, staff_by_clinic[slug], now)
    if report.messages:
        _refresh_planner_statistics()
        for clinic in Clinic.objects.filter(slug__in=[slug for slug, *_ in content.CLINICS]):
            read_cache.bump_clinic_version(clinic.pk)  # bulk inserts send no signals
            # Bulk inserts record no report facts either: the demo's reports are rebuilt from its messages.
            rebuild_report_facts(
                clinic_id=clinic.pk, replace=True, progress=lambda line, c=clinic: progress(f"{c}: {line}")
            )
    return report


def _refresh_planner_statistics() -> None:
    """After a bulk load PostgreSQL's row estimates are stale until autovacuum runs; refresh them now."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            for model in (Contact, Conversation, Message, ReadMarker):
                cursor.execute(f"ANALYZE {connection.ops.quote_name(model._meta.db_table)}")


@transaction.atomic
def _seed_clinics(report: SeedReport) -> dict[str, Clinic]:
    clinics = {}
    for slug, name, tz, _area in content.CLINICS:
        clinics[slug], _ = Clinic.objects.get_or_create(slug=slug, defaults={"name": name, "timezone": tz})
        # A simulated channel: `simulate_patients` can post webhooks for it, replies go to the simulator.
        WhatsAppChannel.objects.get_or_create(
            clinic=clinics[slug],
            defaults={
                "phone_number_id": f"demo-{slug}",
                "display_phone_number": "+55 11 3000-0000",
                "access_token": "simulated",
                "app_secret": secrets.token_hex(16),
                "verify_token": secrets.token_urlsafe(16),
                "simulated": True,
            },
        )
        for label, color in content.LABELS:
            Label.objects.get_or_create(clinic=clinics[slug], name=label, defaults={"color": color})
        for shortcut, text in content.QUICK_REPLIES:
            QuickReply.objects.get_or_create(clinic=clinics[slug], shortcut=shortcut, defaults={"content": text})
        report.clinics.append(name)
    return clinics


@transaction.atomic
def _seed_staff(report: SeedReport, clinics: dict[str, Clinic]) -> dict[str, dict[str, list]]:
    """Staff of every role; passwords are set only on creation, never reset on a later run."""
    User = get_user_model()
    by_clinic: dict[str, dict[str, list]] = {slug: {} for slug in clinics}
    for username, first, last, roles in content.STAFF:
        user, created = User.objects.get_or_create(username=username, defaults={"first_name": first, "last_name": last})
        if created:
            user.set_password(content.DEMO_PASSWORD)
            user.save(update_fields=["password"])
        for slug, role in roles.items():
            Membership.objects.get_or_create(user=user, clinic=clinics[slug], defaults={"role": role})
            by_clinic[slug].setdefault(role, []).append(user)
        report.staff.append((username, ", ".join(f"{role} @ {clinics[s].name}" for s, role in roles.items())))
    return by_clinic


@transaction.atomic
def _seed_batch(clinic: Clinic, area_code: str, indexes: list[int], staff: dict[str, list], now: datetime) -> int:
    rng = random.Random(f"{clinic.slug}:{indexes[0]}")
    contacts = Contact.objects.bulk_create(
        [
            Contact(clinic=clinic, name=_patient_name(rng), phone=demo_phone(area_code, i), created_at=now)
            for i in indexes
        ]
    )
    local_now = timezone.localtime(now, clinic.tzinfo)
    today_start = local_now.replace(hour=0, minute=0, second=0, microsecond=0)
    timelines = [_timeline(rng, i, now, today_start) for i in indexes]
    professionals = staff.get("professional", [])
    conversations = Conversation.objects.bulk_create(
        [
            Conversation(
                clinic=clinic,
                contact=contact,
                status=STATUS_CYCLE[i % len(STATUS_CYCLE)],
                assignee=professionals[i % len(professionals)] if professionals and i % 3 == 0 else None,
                last_message_at=times[-1],
                created_at=times[0],
                updated_at=times[-1],
            )
            for i, contact, times in zip(indexes, contacts, timelines, strict=True)
        ]
    )
    senders = professionals + staff.get("receptionist", [])
    messages = list(_messages(rng, clinic, indexes, conversations, timelines, senders))
    Message.objects.bulk_create(messages, batch_size=2000)
    _seed_actions(rng, clinic, conversations, timelines)
    _seed_read_markers(staff.get("receptionist", []), conversations, messages)
    return len(messages)


@transaction.atomic
def _seed_patient_without_phone(clinic: Clinic, staff: dict[str, list], now: datetime) -> int:
    """A patient who uses a WhatsApp username, so WhatsApp sends no phone: known by user id alone.

    The timeline shows a reply sent from the clinic's WhatsApp Business app and WhatsApp's notice that
    the patient's user id changed. Made once per clinic.
    """
    user_id = f"BR.{clinic.pk}{content.NO_PHONE_PATIENT['user_id_suffix']}"
    if Contact.objects.filter(clinic=clinic, whatsapp_user_id=user_id).exists():
        return 0
    contact = Contact.objects.create(
        clinic=clinic,
        whatsapp_user_id=user_id,
        whatsapp_username=content.NO_PHONE_PATIENT["username"],
        profile_name=content.NO_PHONE_PATIENT["profile_name"],
        created_at=now,
    )
    lines = content.NO_PHONE_PATIENT["timeline"]
    times = [now - timedelta(minutes=5 * (len(lines) - n)) for n in range(len(lines))]
    conversation = Conversation.objects.create(
        clinic=clinic, contact=contact, last_message_at=times[-1], created_at=times[0], updated_at=times[-1]
    )
    senders = staff.get("receptionist", [])
    messages = []
    for n, ((sender_type, kind, text, metadata), at) in enumerate(zip(lines, times, strict=True)):
        inbound = sender_type in (SenderType.PATIENT, SenderType.SYSTEM)
        messages.append(
            Message(
                clinic=clinic,
                conversation=conversation,
                direction=Direction.INBOUND if inbound else Direction.OUTBOUND,
                sender_type=sender_type,
                sender=senders[0] if senders and sender_type == SenderType.PROFESSIONAL and not metadata else None,
                message_type=kind,
                content=text,
                metadata=metadata,
                status=MessageStatus.DELIVERED if inbound else MessageStatus.READ,
                external_id=f"wamid.DEMO{clinic.pk}xUSERNAMEx{n}",
                created_at=at,
                status_changed_at=at,
            )
        )
    Message.objects.bulk_create(messages)
    return len(messages)


def _reminder(conversation: Conversation) -> tuple[str, str, dict]:
    template = SIMULATED[0]
    variables = {"1": conversation.contact.display_name.split(" ")[0], "2": "amanhã", "3": "14h"}
    sent = {"name": template.name, "language": template.language, "variables": variables}
    return MessageType.TEMPLATE, template.render(variables), {"template": sent}


def _patient_name(rng: random.Random) -> str:
    return f"{rng.choice(content.FIRST_NAMES)} {rng.choice(content.LAST_NAMES)} {rng.choice(content.LAST_NAMES)}"


def _timeline(rng: random.Random, index: int, now: datetime, today_start: datetime) -> list[datetime]:
    """Message times, oldest first: the first patients wrote today (the clinic's today, even just after its
    midnight), the rest over the past 60 days."""
    if index < 8:
        since_midnight = max(1.0, (now - today_start).total_seconds())
        last = now - timedelta(seconds=rng.uniform(0.5, min(300 * 60, since_midnight)))
    else:
        last = now - timedelta(days=rng.uniform(1, 60))
    times = [last]
    for _ in range(rng.randint(30, 50) - 1):
        times.append(times[-1] - timedelta(minutes=rng.randint(1, 240)))
    return times[::-1]


def _messages(rng, clinic, indexes, conversations, timelines, senders) -> Iterator[Message]:
    for i, conversation, times in zip(indexes, conversations, timelines, strict=True):
        last = len(times) - 1
        for j, at in enumerate(times):
            inbound = j % 2 == 0
            kind, text, metadata = "text", "", {}
            if j == 3:  # one media message of each type cycles through the patients
                kind = MEDIA_TYPES[i % len(MEDIA_TYPES)]
                text, metadata = content.MEDIA_SAMPLES[kind]
            elif inbound:
                text = rng.choice(content.PATIENT_LINES)
            elif j == last and i >= 8:  # past the 24-hour window: a reminder only a template could carry
                kind, text, metadata = _reminder(conversation)
            if inbound:
                status, sender_type, sender = MessageStatus.DELIVERED, SenderType.PATIENT, None
            else:
                status = LAST_OUTBOUND_STATUS[i % len(LAST_OUTBOUND_STATUS)] if j >= last - 1 else MessageStatus.READ
                sender_type = SenderType.AI if j % 10 == 1 else SenderType.PROFESSIONAL
                sender = rng.choice(senders) if sender_type == SenderType.PROFESSIONAL and senders else None
                if kind == "text":
                    text = rng.choice(content.AI_LINES if sender_type == SenderType.AI else content.STAFF_LINES)
            yield Message(
                clinic=clinic,
                conversation=conversation,
                direction=Direction.INBOUND if inbound else Direction.OUTBOUND,
                sender_type=sender_type,
                sender=sender,
                message_type=kind,
                content=text,
                metadata=metadata,
                status=status,
                error="(#131047) Re-engagement message: more than 24 hours since the last reply"
                if status == "failed"
                else "",
                external_id=None if status == MessageStatus.PENDING else f"wamid.DEMO{clinic.pk}x{i}x{j}",
                created_at=at,
                status_changed_at=at,
            )


def _seed_actions(rng: random.Random, clinic: Clinic, conversations: list[Conversation], timelines) -> None:
    actions = []
    for conversation, times in zip(conversations, timelines, strict=True):
        if rng.random() < 0.3:
            action_type, data = rng.choice(content.ACTION_SAMPLES)
            actions.append(
                ConversationAction(
                    clinic=clinic,
                    conversation=conversation,
                    action_type=action_type,
                    action_data=data,
                    created_at=times[-2],
                )
            )
    ConversationAction.objects.bulk_create(actions)


def _seed_read_markers(readers: list, conversations: list[Conversation], messages: list[Message]) -> None:
    """Receptionists have read half the conversations to the end, so unread counts vary."""
    last_by_conversation = {}
    for message in messages:
        last_by_conversation[message.conversation_id] = message
    markers = [
        ReadMarker(user=reader, conversation=conversation, last_read_message=last_by_conversation[conversation.pk])
        for reader in readers
        for n, conversation in enumerate(conversations)
        if n % 2 == 0
    ]
    ReadMarker.objects.bulk_create(markers)


@dataclass
class BenchClinic:
    slug: str
    username: str
    phone_number_id: str
    app_secret: str


@transaction.atomic
def seed_bench_clinics(count: int) -> list[BenchClinic]:
    """`count` clinics for the fan-out benchmark (bench/fanout.py), each with one receptionist and a
    simulated WhatsApp channel; idempotent. They are named `bench-N`, apart from the demo's."""
    User = get_user_model()
    made = []
    for n in range(1, count + 1):
        slug = f"bench-{n}"
        clinic, _ = Clinic.objects.get_or_create(slug=slug, defaults={"name": f"Clínica de carga {n}"})
        channel, _ = WhatsAppChannel.objects.get_or_create(
            clinic=clinic,
            defaults={
                "phone_number_id": f"bench-{n}",
                "access_token": "simulated",
                "app_secret": secrets.token_hex(16),
                "verify_token": secrets.token_urlsafe(16),
                "simulated": True,
            },
        )
        user, created = User.objects.get_or_create(username=f"bench.{n}", defaults={"first_name": f"Carga {n}"})
        if created:
            user.set_unusable_password()  # reached only through tokens the benchmark issues
            user.save(update_fields=["password"])
        Membership.objects.get_or_create(user=user, clinic=clinic, defaults={"role": Role.RECEPTIONIST})
        made.append(BenchClinic(slug, user.username, channel.phone_number_id, channel.app_secret))
    return made
