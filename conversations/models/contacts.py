"""Contacts: the patients who write to a clinic, known by phone, by WhatsApp user id, or both."""

from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from conversations.models.clinics import Clinic
from conversations.phones import MOBILE_WITHOUT_NINTH_DIGIT, canonical_phone, format_phone

PHONE_PATTERN = r"^[1-9][0-9]{7,14}$"
# E.164 without the plus sign: country code and number, digits only (5511987654321).
phone_validator = RegexValidator(PHONE_PATTERN, "Use the E.164 number in digits only, e.g. 5511987654321.")
# Meta's business-scoped user id: a country code, a period and up to 128 characters (BR.1502576394655843);
# a parent id has one more part (US.ENT.11815799212886844830).
WHATSAPP_USER_ID_PATTERN = r"^[A-Za-z]{2}\.[A-Za-z0-9._-]{1,140}$"
whatsapp_user_id_validator = RegexValidator(
    WHATSAPP_USER_ID_PATTERN, "Use the id exactly as WhatsApp sends it, e.g. BR.1502576394655843."
)


class ContactStatus(models.TextChoices):
    ACTIVE = "active", "Ativo"
    ERASED = "erased", "Anonimizado (LGPD)"


def _unique_when_set(field: str) -> models.UniqueConstraint:
    return models.UniqueConstraint(
        fields=["clinic", field], condition=~Q(**{field: ""}), name=f"contact_unique_clinic_{field}"
    )


class Contact(models.Model):
    """A patient of one clinic, reachable on WhatsApp by phone or, when WhatsApp hides it, by user id.

    Each identifier is optional and unique in the clinic when set. `name` is how the clinic knows the
    patient; `profile_name` and `whatsapp_username` are what the patient shows on WhatsApp, kept current.
    A patient belongs to their clinic for ever: the database refuses to change `clinic`, and refuses a
    conversation whose clinic is not its patient's.
    """

    Status = ContactStatus

    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="contacts")
    name = models.CharField(max_length=200, blank=True)
    # The canonical number (conversations.phones): what every lookup compares.
    phone = models.CharField(max_length=15, blank=True, validators=[phone_validator])
    # The number as WhatsApp knows it (its `wa_id`, which may lack a Brazilian mobile's ninth digit): where
    # replies are addressed.
    whatsapp_id = models.CharField("WhatsApp id (wa_id)", max_length=15, blank=True, default="", db_default="")
    whatsapp_user_id = models.CharField(
        "WhatsApp user id (BSUID)", max_length=150, blank=True, validators=[whatsapp_user_id_validator]
    )
    whatsapp_parent_user_id = models.CharField(
        "WhatsApp parent user id", max_length=150, blank=True, validators=[whatsapp_user_id_validator]
    )
    whatsapp_username = models.CharField("WhatsApp username", max_length=100, blank=True)
    profile_name = models.CharField("WhatsApp profile name", max_length=200, blank=True)
    email = models.EmailField(blank=True)
    # Staff's free note about the patient (Observações): theirs to correct, erased with the patient.
    notes = models.TextField("observações", blank=True, default="", db_default="")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "contato"
        constraints = [
            _unique_when_set("phone"),
            _unique_when_set("whatsapp_user_id"),
            _unique_when_set("whatsapp_parent_user_id"),
            _unique_when_set("whatsapp_username"),
            models.CheckConstraint(
                condition=Q(phone="") | Q(phone__regex=PHONE_PATTERN), name="contact_phone_e164_or_empty"
            ),
            # One patient per canonical number per clinic: with the unique phone above, no second form is stored.
            models.CheckConstraint(
                condition=~Q(phone__regex=MOBILE_WITHOUT_NINTH_DIGIT), name="contact_phone_canonical"
            ),
            models.CheckConstraint(condition=Q(status__in=ContactStatus.values), name="contact_status_valid"),
            # What a conversation's (contact, clinic) refers to, so that the database itself refuses a conversation
            # of another clinic than its patient's (migration 0023, which also keeps a patient's clinic fixed).
            models.UniqueConstraint(fields=["id", "clinic"], name="contact_id_clinic"),
        ]

    def __str__(self) -> str:
        return f"{self.display_name} ({self.phone_display})"

    @property
    def display_name(self) -> str:
        """What staff see: the clinic's name for the patient, else WhatsApp's profile name or username."""
        if self.name or self.profile_name:
            return self.name or self.profile_name
        if self.whatsapp_username:
            return f"@{self.whatsapp_username}"
        return self.phone_display if self.phone or self.whatsapp_id else "Paciente sem telefone"

    @property
    def phone_display(self) -> str:
        """The canonical number, else the one WhatsApp knows them by, as people read it."""
        return format_phone(self.phone or canonical_phone(self.whatsapp_id))
