"""Contacts: the patients who write to a clinic."""

from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

from conversations.models.clinics import Clinic

# E.164 without the plus sign: country code and number, digits only (5511987654321).
phone_validator = RegexValidator(r"^[1-9][0-9]{7,14}$", "Use the E.164 number in digits only, e.g. 5511987654321.")


class ContactStatus(models.TextChoices):
    ACTIVE = "active", "Ativo"
    BLOCKED = "blocked", "Bloqueado"


class Contact(models.Model):
    """A patient known to one clinic by phone number."""

    Status = ContactStatus

    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="contacts")
    name = models.CharField(max_length=200, blank=True)
    phone = models.CharField(max_length=15, validators=[phone_validator])
    email = models.EmailField(blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "contato"
        constraints = [
            models.UniqueConstraint(fields=["clinic", "phone"], name="contact_unique_clinic_phone"),
            models.CheckConstraint(condition=models.Q(phone__regex=r"^[1-9][0-9]{7,14}$"), name="contact_phone_e164"),
            models.CheckConstraint(condition=models.Q(status__in=ContactStatus.values), name="contact_status_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.name or 'Sem nome'} (+{self.phone})"
