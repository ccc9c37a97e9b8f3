"""Actions on conversations: status, assignment and the actions shown in a timeline."""

import re
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from conversations import events, jobs
from conversations.actions import reporting
from conversations.actions.audit import record_audit
from conversations.actions.locks import lock_conversation
from conversations.errors import InvalidInput, NotAMember
from conversations.models import Conversation, ConversationAction, Label
from conversations.selectors import is_member

ACTION_TYPE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


@transaction.atomic
def set_conversation_status(
    *,
    conversation: Conversation,
    status: str,
    actor: AbstractBaseUser | None,
    ip: str | None = None,
    by_support: bool = False,
) -> tuple[Conversation, bool]:
    """Set a conversation open, pending or resolved; setting the status it has changes nothing. The
    support team (`by_support`, from the admin) is no member of the clinic, yet is recorded as the actor."""
    if status not in Conversation.Status.values:
        raise InvalidInput(f"status must be one of {', '.join(Conversation.Status.values)}.", field="status")
    if actor is not None and not by_support and not is_member(actor, conversation.clinic_id):
        raise NotAMember("Only staff of the conversation's clinic can change it.")
    conversation = lock_conversation(conversation)
    if conversation.status == status:
        return conversation, False
    if status != Conversation.Status.RESOLVED and _another_thread_unresolved(conversation):
        raise InvalidInput("The contact already has an open conversation on this channel.", field="status")
    changes = {"status": status}
    if status == Conversation.Status.RESOLVED and conversation.snoozed_until is not None:
        changes["snoozed_until"] = None  # resolved: nothing left to come back for
    if status == Conversation.Status.RESOLVED and conversation.answered_by == Conversation.AnsweredBy.STAFF:
        changes["answered_by"] = Conversation.AnsweredBy.ASSISTANT  # the patient's next visit starts with it
    if status == Conversation.Status.RESOLVED:
        by_staff = actor is not None and not by_support  # support resolving is no staff member's work
        extra = reporting.resolved(conversation, user_id=actor.pk if by_staff else None)
    else:
        extra = []
        if conversation.status == Conversation.Status.RESOLVED:
            reporting.opened(conversation, timezone.now())
    _change(conversation, changes, actor=actor, action="conversation.status", ip=ip, saved=extra)
    return conversation, True


def _change(
    conversation: Conversation, changes: dict, *, actor, action: str, ip: str | None, saved: list[str] = ()
) -> None:
    """Set fields of the (locked) conversation, audited from → to and told to every screen; `saved`: fields
    set already (by the reports' record) saved with them."""
    detail = {}
    for field, value in changes.items():
        detail[field] = {"from": _shown(getattr(conversation, field)), "to": _shown(value)}
        setattr(conversation, field, value)
    conversation.updated_at = timezone.now()
    conversation.save(update_fields=[*changes, *saved, "updated_at"])
    first = detail[next(iter(changes))]
    record_audit(
        clinic_id=conversation.clinic_id,
        actor=actor,
        action=action,
        obj=conversation,
        detail=first if len(changes) == 1 else detail,
        ip=ip,
    )
    events.publish_conversation_updated(conversation, list(changes))


def _shown(value):
    """A field's value as the audit keeps it: a user by id, a time in ISO 8601."""
    if isinstance(value, datetime):
        return value.isoformat()
    return getattr(value, "pk", value)


def _another_thread_unresolved(conversation: Conversation) -> bool:
    return (
        Conversation.objects.filter(contact_id=conversation.contact_id, channel=conversation.channel)
        .exclude(pk=conversation.pk)
        .exclude(status=Conversation.Status.RESOLVED)
        .exists()
    )


@transaction.atomic
def assign_conversation(
    *,
    conversation: Conversation,
    assignee: AbstractBaseUser | None,
    actor: AbstractBaseUser | None,
    ip: str | None = None,
) -> tuple[Conversation, bool]:
    """Give the conversation to a member of its clinic, or to nobody (`assignee=None`)."""
    if actor is not None and not is_member(actor, conversation.clinic_id):
        raise NotAMember("Only staff of the conversation's clinic can assign it.")
    if assignee is not None and not is_member(assignee, conversation.clinic_id):
        raise InvalidInput("The assignee must be active staff of the conversation's clinic.", field="assignee")
    conversation = lock_conversation(conversation)
    if conversation.assignee_id == (assignee.pk if assignee else None):
        return conversation, False
    _change(conversation, {"assignee": assignee}, actor=actor, action="conversation.assigned", ip=ip)
    return conversation, True


@transaction.atomic
def set_answered_by(
    *, conversation: Conversation, answered_by: str, actor: AbstractBaseUser | None, ip: str | None = None
) -> tuple[Conversation, bool]:
    """Staff take the conversation from the assistant ("staff": the assistant pauses, its answers are kept
    as suggestions) or give it back ("assistant")."""
    if answered_by not in Conversation.AnsweredBy.values:
        raise InvalidInput("answered_by must be assistant or staff.", field="answered_by")
    if actor is not None and not is_member(actor, conversation.clinic_id):
        raise NotAMember("Only staff of the conversation's clinic can change who answers it.")
    conversation = lock_conversation(conversation)
    if conversation.answered_by == answered_by:
        return conversation, False
    _change(conversation, {"answered_by": answered_by}, actor=actor, action="conversation.answered_by", ip=ip)
    return conversation, True


@transaction.atomic
def set_labels(
    *, conversation: Conversation, labels: list[int], actor: AbstractBaseUser | None, ip: str | None = None
) -> tuple[Conversation, bool]:
    """Put exactly these labels (ids of the conversation's clinic) on the conversation."""
    if actor is not None and not is_member(actor, conversation.clinic_id):
        raise NotAMember("Only staff of the conversation's clinic can label it.")
    wanted = set(labels)
    found = set(Label.objects.filter(clinic_id=conversation.clinic_id, pk__in=wanted).values_list("pk", flat=True))
    if found != wanted:
        raise InvalidInput(f"No such label in this clinic: {sorted(wanted - found)}.", field="labels")
    conversation = lock_conversation(conversation)
    previous = set(conversation.labels.values_list("pk", flat=True))
    if previous == wanted:
        return conversation, False
    conversation.labels.set(wanted)
    conversation.updated_at = timezone.now()
    conversation.save(update_fields=["updated_at"])
    record_audit(
        clinic_id=conversation.clinic_id,
        actor=actor,
        action="conversation.labels",
        obj=conversation,
        detail={"from": sorted(previous), "to": sorted(wanted)},
        ip=ip,
    )
    events.publish_conversation_updated(conversation, ["labels"])
    return conversation, True


@transaction.atomic
def snooze_conversation(
    *, conversation: Conversation, until: datetime | None, actor: AbstractBaseUser | None, ip: str | None = None
) -> tuple[Conversation, bool]:
    """Take the conversation out of the open list until `until` (None: back now). It comes back on its
    own then (a scheduled task, kept in the database), or at once when the patient writes."""
    if actor is not None and not is_member(actor, conversation.clinic_id):
        raise NotAMember("Only staff of the conversation's clinic can snooze it.")
    if until is not None and until <= timezone.now():
        raise InvalidInput("Snooze until a time in the future.", field="snoozed_until")
    conversation = lock_conversation(conversation)
    if until is not None and conversation.status == Conversation.Status.RESOLVED:
        raise InvalidInput("A resolved conversation cannot be snoozed.", field="snoozed_until")
    if conversation.snoozed_until == until:
        return conversation, False
    if until is not None:
        jobs.wake(conversation.pk, at=until)
    _change(conversation, {"snoozed_until": until}, actor=actor, action="conversation.snoozed", ip=ip)
    return conversation, True


@transaction.atomic
def wake_conversation(*, conversation_id: int) -> bool:
    """The snooze is over: back in the open list, on every screen. A snooze moved later, or ended
    already (the patient wrote), is left alone."""
    conversation = Conversation.objects.filter(pk=conversation_id).first()
    if conversation is None:
        return False
    conversation = lock_conversation(conversation)
    if conversation.snoozed_until is None or conversation.snoozed_until > timezone.now():
        return False
    _change(conversation, {"snoozed_until": None}, actor=None, action="conversation.woken", ip=None)
    return True


UNCHANGED = object()


@transaction.atomic
def update_conversation(
    *,
    conversation: Conversation,
    actor: AbstractBaseUser | None,
    status: str | object = UNCHANGED,
    assignee: AbstractBaseUser | None | object = UNCHANGED,
    answered_by: str | object = UNCHANGED,
    labels: list[int] | object = UNCHANGED,
    snoozed_until: datetime | None | object = UNCHANGED,
    ip: str | None = None,
) -> tuple[Conversation, list[str]]:
    """Change status, assignee, who answers, labels and snooze together, all or nothing; returns what
    changed."""
    changed = []
    if status is not UNCHANGED:
        conversation, did = set_conversation_status(conversation=conversation, status=status, actor=actor, ip=ip)
        changed += ["status"] if did else []
    if assignee is not UNCHANGED:
        conversation, did = assign_conversation(conversation=conversation, assignee=assignee, actor=actor, ip=ip)
        changed += ["assignee"] if did else []
    if answered_by is not UNCHANGED:
        conversation, did = set_answered_by(conversation=conversation, answered_by=answered_by, actor=actor, ip=ip)
        changed += ["answered_by"] if did else []
    if labels is not UNCHANGED:
        conversation, did = set_labels(conversation=conversation, labels=labels, actor=actor, ip=ip)
        changed += ["labels"] if did else []
    if snoozed_until is not UNCHANGED:
        conversation, did = snooze_conversation(conversation=conversation, until=snoozed_until, actor=actor, ip=ip)
        changed += ["snoozed_until"] if did else []
    return conversation, changed


@transaction.atomic
def add_conversation_action(
    *,
    conversation: Conversation,
    action_type: str,
    action_data: dict | None = None,
    actor: AbstractBaseUser | None = None,
    ip: str | None = None,
) -> ConversationAction:
    """Record something done about the conversation (an appointment booked) in its timeline."""
    if not isinstance(action_type, str) or not ACTION_TYPE.match(action_type):
        raise InvalidInput("action_type must be lower-case letters, digits and underscores.", field="action_type")
    if action_data is not None and not isinstance(action_data, dict):
        raise InvalidInput("action_data must be a JSON object.", field="action_data")
    if actor is not None and not is_member(actor, conversation.clinic_id):
        raise NotAMember("Only staff of the conversation's clinic can add to it.")
    action = ConversationAction.objects.create(
        clinic_id=conversation.clinic_id,
        conversation=conversation,
        action_type=action_type,
        action_data=action_data or {},
    )
    if actor is not None:
        record_audit(clinic_id=conversation.clinic_id, actor=actor, action="conversation.action", obj=action, ip=ip)
    events.publish_conversation_action(action)
    return action
