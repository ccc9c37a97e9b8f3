"""The clinic's quick replies: written, changed and removed by its admins, used by all its staff."""

import re

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from conversations import events
from conversations.actions.audit import record_audit
from conversations.errors import InvalidInput, NotAMember
from conversations.models import Clinic, QuickReply, Role
from conversations.questions import checked_question
from conversations.selectors import membership_for

SHORTCUT = re.compile(r"[\w-]{1,32}")
MAX_REPLY_CHARS = 4096
# What a quick reply may leave to be filled from the conversation.
VARIABLES = ("nome", "primeiro_nome", "clinica")


def _check(clinic_id: int, actor: AbstractBaseUser, shortcut: str, content: str) -> tuple[str, str]:
    membership = membership_for(actor, clinic_id)
    if membership is None or (membership.role != Role.ADMIN and not actor.is_superuser):
        raise NotAMember("Only the clinic's admins manage its quick replies.")
    shortcut = shortcut.strip().lstrip("/").lower() if isinstance(shortcut, str) else ""
    content = content.strip() if isinstance(content, str) else ""
    if not SHORTCUT.fullmatch(shortcut):
        raise InvalidInput("The short code is 1–32 letters, digits, - or _ (typed after /).", field="shortcut")
    if not content:
        raise InvalidInput("Write the reply's text.", field="content")
    if len(content) > MAX_REPLY_CHARS:
        raise InvalidInput(f"A quick reply holds up to {MAX_REPLY_CHARS} characters.", field="content")
    return shortcut, content


def _buttons(content: str, buttons: list | None) -> list[str]:
    """The reply buttons a quick reply asks with, by WhatsApp's rules (none: a plain answer)."""
    if not buttons:
        return []
    return checked_question(content=content, buttons=buttons)["buttons"]


def _saved(reply: QuickReply, actor: AbstractBaseUser, action: str, ip: str | None) -> QuickReply:
    try:
        with transaction.atomic():
            reply.save()
    except IntegrityError:
        raise InvalidInput(f"The clinic already has a quick reply /{reply.shortcut}.", field="shortcut") from None
    record_audit(clinic_id=reply.clinic_id, actor=actor, action=action, obj=reply, ip=ip)
    events.publish_quick_replies_changed(reply.clinic_id)
    return reply


@transaction.atomic
def create_quick_reply(
    *,
    clinic: Clinic,
    actor: AbstractBaseUser,
    shortcut: str,
    content: str,
    buttons: list | None = None,
    ip: str | None = None,
) -> QuickReply:
    shortcut, content = _check(clinic.pk, actor, shortcut, content)
    reply = QuickReply(
        clinic=clinic, shortcut=shortcut, content=content, buttons=_buttons(content, buttons), created_by=actor
    )
    return _saved(reply, actor, "quick_reply.created", ip)


@transaction.atomic
def change_quick_reply(
    *,
    reply: QuickReply,
    actor: AbstractBaseUser,
    shortcut: str,
    content: str,
    buttons: list | None = None,
    ip: str | None = None,
) -> QuickReply:
    reply.shortcut, reply.content = _check(reply.clinic_id, actor, shortcut, content)
    reply.buttons = _buttons(reply.content, buttons)
    reply.updated_at = timezone.now()
    return _saved(reply, actor, "quick_reply.changed", ip)


@transaction.atomic
def delete_quick_reply(*, reply: QuickReply, actor: AbstractBaseUser, ip: str | None = None) -> None:
    _check(reply.clinic_id, actor, reply.shortcut, reply.content)
    record_audit(clinic_id=reply.clinic_id, actor=actor, action="quick_reply.deleted", obj=reply, ip=ip)
    reply.delete()
    events.publish_quick_replies_changed(reply.clinic_id)
