"""Recording who did what to a clinic's data, inside the action's own transaction."""

from django.contrib.auth.models import AbstractBaseUser
from django.db import models

from conversations.models import AuditEvent, Clinic


def record_audit(
    *,
    clinic_id: int | None,
    actor: AbstractBaseUser | None,
    action: str,
    obj: models.Model,
    detail: dict | None = None,
    ip: str | None = None,
) -> AuditEvent:
    actor = actor if actor is not None and actor.is_authenticated else None
    return AuditEvent.objects.create(
        clinic_id=clinic_id,
        actor=actor,
        actor_name=actor.get_username() if actor is not None else "",
        action=action,
        object_type=obj._meta.model_name,
        object_id=str(obj.pk),
        detail=detail or {},
        ip=ip,
    )


def record_reading(*, actor: AbstractBaseUser, conversation, via: str, ip: str | None = None) -> AuditEvent:
    """Someone opened a conversation (its messages): `via` the inbox or the API."""
    return record_audit(
        clinic_id=conversation.clinic_id,
        actor=actor,
        action="conversation.read",
        obj=conversation,
        detail={"via": via},
        ip=ip,
    )


def record_search(*, actor: AbstractBaseUser, clinic_id: int, found: int, ip: str | None = None) -> AuditEvent:
    """Someone searched the clinic's messages: how many they found, never the words (they may name a
    patient)."""
    return record_audit(
        clinic_id=clinic_id,
        actor=actor,
        action="messages.searched",
        obj=Clinic(pk=clinic_id),
        detail={"found": found},
        ip=ip,
    )
