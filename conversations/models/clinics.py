"""Clinics, the tenants, and the memberships that give staff access to them."""

import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.timezone import now


def validate_timezone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(
            "%(value)s is not an IANA time zone; use a name such as America/Sao_Paulo.",
            params={"value": value},
        )


class Clinic(models.Model):
    """A clinic: the tenant that owns every contact, conversation and message."""

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80, unique=True)
    timezone = models.CharField(max_length=64, default="America/Sao_Paulo", validators=[validate_timezone])
    # The last seq handed out to this clinic's event log; incremented under the row lock (realtime.events).
    event_seq = models.PositiveBigIntegerField(default=0, editable=False)
    retention_days = models.PositiveIntegerField(
        default=1825, help_text="Messages older than this many days may be erased under LGPD."
    )
    created_at = models.DateTimeField(default=now, editable=False)

    class Meta:
        ordering = ["name"]
        verbose_name = "clínica"
        constraints = [
            models.CheckConstraint(condition=models.Q(retention_days__gte=1), name="clinic_retention_positive")
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def tzinfo(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)


class Role(models.TextChoices):
    ADMIN = "admin", "Administrador"
    PROFESSIONAL = "professional", "Profissional"
    RECEPTIONIST = "receptionist", "Recepcionista"


class Membership(models.Model):
    """A user's access to one clinic, with a role; a user may belong to several clinics."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.RECEPTIONIST)
    created_at = models.DateTimeField(default=now, editable=False)

    class Meta:
        verbose_name = "vínculo"
        constraints = [
            models.UniqueConstraint(fields=["user", "clinic"], name="membership_unique_user_clinic"),
            models.CheckConstraint(condition=models.Q(role__in=Role.values), name="membership_role_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.user} @ {self.clinic} ({self.get_role_display()})"
