"""Recording who did what to a clinic's data, inside the action's own transaction."""

from django.contrib.auth.models import AbstractBaseUser
from django.db import models

from conversations.models import AuditEvent


def record_audit(
    *,
    clinic_id: int,
    actor: AbstractBaseUser | None,
    action: str,
    obj: models.Model,
    detail: dict | None = None,
    ip: str | None = None,
) -> AuditEvent:
    return AuditEvent.objects.create(
        clinic_id=clinic_id,
        actor=actor if actor is not None and actor.is_authenticated else None,
        action=action,
        object_type=obj._meta.model_name,
        object_id=str(obj.pk),
        detail=detail or {},
        ip=ip,
    )
