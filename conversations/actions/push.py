"""Staff's devices and what they are told with the tab closed (Web Push, DESIGN §12): a member subscribes a
device for their clinic with what they want to hear of, or unsubscribes it; logging out of the login that
subscribed it removes it; and the worker's tasks tell the right devices of a new patient message, a
mention, or a wait past the clinic's target — the clinic's name, what happened, the conversation's id,
nothing about the patient. Sending waits on the network: no transaction is held open meanwhile."""

import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from conversations import clinic_hours, jobs, push
from conversations.actions.audit import record_audit
from conversations.errors import InvalidInput, NotAMember
from conversations.logins import login_is_open
from conversations.models import Clinic, Conversation, Membership, Message, Note, PushSubscription, SenderType
from conversations.selectors import is_member
from realtime import broadcast

logger = logging.getLogger(__name__)
PREFERENCES = ("assigned", "unassigned", "mentions", "late")
MAX_KEY_CHARS = 200
SENDERS = 8  # pushes sent at once


def _devices_changed(clinic_id: int) -> None:
    push.forget({"clinic_id": clinic_id})
    transaction.on_commit(lambda: broadcast.control({"type": "push_devices", "clinic_id": clinic_id}), robust=True)


@transaction.atomic
def subscribe_device(
    *,
    user: AbstractBaseUser,
    clinic: Clinic,
    endpoint: str,
    p256dh: str,
    auth: str,
    preferences: dict[str, bool],
    session_key: str = "",
    ip: str | None = None,
) -> PushSubscription:
    """Subscribe (or update) this browser for the member's clinic; a browser another member had subscribed
    becomes this one's. The endpoint must be a push service this server posts to."""
    if not is_member(user, clinic.pk):
        raise NotAMember("Only staff of the clinic can have its notifications.")
    if not push.configured():
        raise InvalidInput("Push notifications are not set up on this server (WEB_PUSH_* keys).", field="endpoint")
    if not isinstance(endpoint, str) or len(endpoint) > 1000 or not push.allowed_endpoint(endpoint):
        raise InvalidInput("The endpoint is not a push service this server sends to.", field="endpoint")
    for field, value in (("keys.p256dh", p256dh), ("keys.auth", auth)):
        if not isinstance(value, str) or not value or len(value) > MAX_KEY_CHARS:
            raise InvalidInput("The subscription's keys are missing or malformed.", field=field)
    unknown = sorted(set(preferences) - set(PREFERENCES))
    if unknown or not all(isinstance(v, bool) for v in preferences.values()):
        raise InvalidInput(
            f"Preferences are true/false for {', '.join(PREFERENCES)}.", field=(unknown or ["preferences"])[0]
        )
    device, created = PushSubscription.objects.select_for_update().get_or_create(
        endpoint=endpoint,
        defaults={"user": user, "clinic": clinic, "p256dh": p256dh, "auth": auth, "session_key": session_key},
    )
    moved = {device.clinic_id, clinic.pk}
    device.user, device.clinic, device.p256dh, device.auth, device.session_key = user, clinic, p256dh, auth, session_key
    device.vapid_key = settings.WEB_PUSH_PUBLIC_KEY
    for field in PREFERENCES:
        if field in preferences:
            setattr(device, field, preferences[field])
    device.save()
    if created:
        record_audit(clinic_id=clinic.pk, actor=user, action="push.subscribed", obj=device, ip=ip)
    for clinic_id in moved:
        _devices_changed(clinic_id)
    return device


@transaction.atomic
def unsubscribe_device(*, user: AbstractBaseUser, endpoint: str, ip: str | None = None) -> bool:
    """Stop pushing to this browser (the member's own; another's is left alone). Returns whether one went."""
    device = PushSubscription.objects.filter(user=user, endpoint=endpoint).first()
    if device is None:
        return False
    record_audit(clinic_id=device.clinic_id, actor=user, action="push.unsubscribed", obj=device, ip=ip)
    device.delete()
    _devices_changed(device.clinic_id)
    return True


def forget_login_devices(session_key: str) -> int:
    """The login that subscribed them ended (a logout): those browsers are told nothing more."""
    if not session_key:
        return 0
    clinics = set(PushSubscription.objects.filter(session_key=session_key).values_list("clinic_id", flat=True))
    removed, _ = PushSubscription.objects.filter(session_key=session_key).delete()
    for clinic_id in clinics:
        _devices_changed(clinic_id)
    return removed


def forget_member_devices(user_id: int, clinic_id: int) -> None:
    """Someone left the clinic: their devices hear nothing more of it."""
    if PushSubscription.objects.filter(user_id=user_id, clinic_id=clinic_id).delete()[0]:
        _devices_changed(clinic_id)


# --- Telling the devices (the worker's tasks) --------------------------------------------------------------


def _members(clinic_id: int) -> Q:
    """Devices of the clinic's active members only (a member removed since is told nothing)."""
    staff = Membership.objects.filter(clinic_id=clinic_id, user__is_active=True).values("user_id")
    return Q(clinic_id=clinic_id, user_id__in=staff)


def _reachable(device: PushSubscription) -> bool:
    """Whether the device can still be told: the login that subscribed it is open (it ends without a logout
    we see when a password is changed by any path or the session expires), and it subscribed with the
    server's present VAPID key. Else it hears nothing more until its member subscribes again."""
    return device.vapid_key == settings.WEB_PUSH_PUBLIC_KEY and login_is_open(device.session_key, device.user)


def _tell(devices, kind: str, clinic: Clinic, conversation_id: int) -> int:
    """Push to each device at once (a slow push service holds up no other), then record what happened."""
    data = push.payload(kind, clinic.pk, clinic.name, conversation_id)
    devices = list(devices.select_related("user"))
    ended = [device.pk for device in devices if not _reachable(device)]
    devices = [device for device in devices if device.pk not in ended]
    outcomes = []
    if devices:
        with ThreadPoolExecutor(max_workers=min(SENDERS, len(devices))) as pool:
            outcomes = list(pool.map(lambda device: push.send(device, data), devices))
    gone = ended + [device.pk for device, outcome in zip(devices, outcomes, strict=True) if outcome == "gone"]
    sent = [device.pk for device, outcome in zip(devices, outcomes, strict=True) if outcome == "sent"]
    if gone:
        PushSubscription.objects.filter(pk__in=gone).delete()
        push.forget({"clinic_id": clinic.pk})
    if sent:
        PushSubscription.objects.filter(pk__in=sent).update(last_sent_at=timezone.now())
    return len(sent)


def notify_new_message(*, message_id: int) -> int:
    """A patient wrote: the devices of whoever is responsible for the conversation (or, with no one, every
    member who wants those), and, when this message began a wait, a later check against the target."""
    message = Message.objects.select_related("conversation", "clinic").filter(pk=message_id).first()
    if message is None or message.sender_type != SenderType.PATIENT or not push.configured():
        return 0
    conversation = message.conversation
    devices = PushSubscription.objects.filter(_members(message.clinic_id))
    if conversation.assignee_id is None:
        devices = devices.filter(unassigned=True)
    else:
        devices = devices.filter(assigned=True, user_id=conversation.assignee_id)
    if conversation.awaiting_since == message.created_at:  # this message began the wait
        deadline = clinic_hours.of(message.clinic_id).deadline(message.created_at)
        if deadline is not None and PushSubscription.objects.filter(_members(message.clinic_id), late=True).exists():
            jobs.push("late", conversation.pk, message.created_at.isoformat(), at=max(deadline, timezone.now()))
    return _tell(devices, "message", message.clinic, conversation.pk)


def notify_mention(*, note_id: int) -> int:
    """A note mentions colleagues: their devices (who want mentions), never the author's."""
    note = Note.objects.select_related("conversation__clinic").filter(pk=note_id).first()
    if note is None or not push.configured():
        return 0
    mentioned = list(note.mentions.exclude(pk=note.author_id).values_list("pk", flat=True))
    devices = PushSubscription.objects.filter(
        _members(note.conversation.clinic_id), mentions=True, user_id__in=mentioned
    )
    return _tell(devices, "mention", note.conversation.clinic, note.conversation_id)


def notify_late(*, conversation_id: int, since: str) -> int:
    """The wait that began at `since` has passed the clinic's first-response target — if the patient is still
    waiting since then: the responsible member's devices, or every member's who wants those."""
    conversation = Conversation.objects.select_related("clinic").filter(pk=conversation_id).first()
    if conversation is None or not push.configured():
        return 0
    if conversation.awaiting_since is None or conversation.awaiting_since != datetime.fromisoformat(since):
        return 0  # answered meanwhile, or a later wait (whose own check is scheduled)
    if conversation.status == Conversation.Status.RESOLVED:
        return 0
    devices = PushSubscription.objects.filter(_members(conversation.clinic_id), late=True)
    if conversation.assignee_id is not None:
        devices = devices.filter(user_id=conversation.assignee_id)
    return _tell(devices, "late", conversation.clinic, conversation.pk)
