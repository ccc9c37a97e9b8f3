"""The audit trail: who read, sent, changed, exported or erased what (LGPD)."""

from django.conf import settings
from django.db import models
from django.utils import timezone

from conversations.models.clinics import Clinic


class AppendOnly(models.QuerySet):
    """The trail is written once: no bulk change or removal through the ORM (the database refuses them too,
    on PostgreSQL: migration 0010's trigger)."""

    def update(self, **kwargs):
        raise PermissionError("The audit trail is append-only: its records are never changed.")

    def delete(self):
        raise PermissionError("The audit trail is append-only: its records are never deleted.")


class AuditEvent(models.Model):
    """One act of a person (or an integration) on a clinic's data. It outlives what it speaks of: the
    clinic and the actor are kept by id (no constraint, never cascaded), the actor's name as it was."""

    # None for a change to the installation itself (a user account, a permission group), not to one clinic.
    clinic = models.ForeignKey(
        Clinic, null=True, blank=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="audit_events"
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    actor_name = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=64)
    object_type = models.CharField(max_length=64)
    object_id = models.CharField(max_length=64)
    detail = models.JSONField(default=dict, blank=True)
    at = models.DateTimeField(default=timezone.now)
    ip = models.GenericIPAddressField(null=True, blank=True)

    objects = AppendOnly.as_manager()

    class Meta:
        verbose_name = "evento de auditoria"
        verbose_name_plural = "eventos de auditoria"
        indexes = [models.Index(fields=["clinic", "-at"], name="audit_clinic_at")]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor_name or '-'} {self.action} {self.object_type}#{self.object_id}"

    def save(self, *args, **kwargs) -> None:
        if not self._state.adding:
            raise PermissionError("The audit trail is append-only: its records are never changed.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("The audit trail is append-only: its records are never deleted.")
