"""Actions on contacts: finding the patient a message is from, by phone or WhatsApp user id, and keeping
the identifiers WhatsApp reports about them current."""

import logging
import re
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from conversations.errors import InvalidInput
from conversations.models import Clinic, Contact

logger = logging.getLogger(__name__)

E164_DIGITS = re.compile(r"^[1-9][0-9]{7,14}$")
MAX_WHATSAPP_ID = 150
# The identifiers that find a patient, in the order they are trusted (DESIGN §6: by phone, else by BSUID).
KEYS = ("phone", "whatsapp_user_id", "whatsapp_parent_user_id")


def normalize_phone(phone: str) -> str:
    """E.164 digits from what a person or a provider wrote ('+55 (11) 98765-4321' → '5511987654321')."""
    digits = re.sub(r"\D", "", phone or "")
    if not E164_DIGITS.match(digits):
        raise InvalidInput(
            f"{phone!r} is not a phone number in international form; use e.g. +55 11 98765-4321.", field="phone"
        )
    return digits


def _clean_id(value: str, field: str) -> str:
    value = (value or "").strip()
    if len(value) > MAX_WHATSAPP_ID or any(c.isspace() for c in value):
        raise InvalidInput(f"{value[:40]!r} is not a WhatsApp user id.", field=field)
    return value


@dataclass(frozen=True)
class PatientIdentity:
    """Who a message is from, as far as the sender told: any of these may be empty, not all of them."""

    phone: str = ""
    whatsapp_user_id: str = ""
    whatsapp_parent_user_id: str = ""
    whatsapp_username: str = ""
    profile_name: str = ""

    @classmethod
    def of(
        cls,
        *,
        phone: str = "",
        whatsapp_user_id: str = "",
        whatsapp_parent_user_id: str = "",
        whatsapp_username: str = "",
        profile_name: str = "",
    ) -> "PatientIdentity":
        """Checked and normalised; InvalidInput when nothing identifies the patient or a value is malformed."""
        identity = cls(
            phone=normalize_phone(phone) if phone else "",
            whatsapp_user_id=_clean_id(whatsapp_user_id, "whatsapp_user_id"),
            whatsapp_parent_user_id=_clean_id(whatsapp_parent_user_id, "whatsapp_parent_user_id"),
            whatsapp_username=(whatsapp_username or "").strip().lstrip("@")[:100],
            profile_name=(profile_name or "").strip()[:200],
        )
        if not (identity.phone or identity.whatsapp_user_id or identity.whatsapp_parent_user_id):
            raise InvalidInput("A patient needs a phone number or a WhatsApp user id.", field="phone")
        return identity

    @property
    def keys(self) -> dict[str, str]:
        return {key: getattr(self, key) for key in KEYS if getattr(self, key)}


def find_or_create_contact(*, clinic: Clinic, identity: PatientIdentity, name: str = "") -> tuple[Contact, bool]:
    """The clinic's patient for `identity`, created if new, locked until the caller's transaction ends.

    Found by phone when the phone is known to the clinic, else by WhatsApp user id, else by parent id;
    the other identifiers of the payload are then recorded on that patient. When they belong to
    another patient already, the two are kept apart (never merged silently) and the conflict is logged.

    Call inside a transaction. The row lock serialises concurrent deliveries for one patient (an album
    arrives as several webhooks at once), so they never create a second conversation or message.
    """
    contact, others = _locked_matches(clinic, identity)
    created = False
    if contact is None:
        _free_username(clinic.pk, identity.whatsapp_username)
        try:
            with transaction.atomic():
                contact = Contact.objects.create(
                    clinic=clinic,
                    name=(name or identity.profile_name or "").strip()[:200],
                    **identity.keys,
                    whatsapp_username=identity.whatsapp_username,
                    profile_name=identity.profile_name,
                )
                created = True
        except IntegrityError:
            # Another delivery created the patient between our read and our insert (the unique
            # constraints caught it): it is committed now, so the second look finds and locks it.
            contact, others = _locked_matches(clinic, identity)
            if contact is None:
                raise
    if not created:
        _record_identifiers(contact, identity, taken={key for other in others for key in _shared(other, identity)})
        if name and not contact.name:
            contact.name = name.strip()[:200]
            contact.save(update_fields=["name"])
    for other in others:
        logger.warning(
            "whatsapp identifiers %s of one message belong to patients #%s and #%s of clinic %s; kept apart",
            sorted(_shared(other, identity)),
            contact.pk,
            other.pk,
            clinic.pk,
        )
    return contact, created


def _locked_matches(clinic: Clinic, identity: PatientIdentity) -> tuple[Contact | None, list[Contact]]:
    """The patient the identity routes to, and any other patient holding one of its identifiers; locked."""
    match = Q()
    for key, value in identity.keys.items():
        match |= Q(**{key: value})
    # One statement for the usual case, a patient who wrote before: find and lock.
    found = list(Contact.objects.select_for_update().filter(match, clinic=clinic).order_by("pk"))
    for key in KEYS:
        value = getattr(identity, key)
        chosen = next((c for c in found if value and getattr(c, key) == value), None)
        if chosen is not None:
            return chosen, [c for c in found if c.pk != chosen.pk]
    return None, []


def _shared(contact: Contact, identity: PatientIdentity) -> set[str]:
    return {key for key, value in identity.keys.items() if getattr(contact, key) == value}


def _record_identifiers(contact: Contact, identity: PatientIdentity, *, taken: set[str]) -> None:
    """Fill in what the patient's row lacks; an identifier it already has is changed only by a system
    message (a number or id change), never by a payload that disagrees with it."""
    changed = []
    for key, value in identity.keys.items():
        current = getattr(contact, key)
        if key in taken or current == value:
            continue
        if current:
            logger.warning("patient #%s: whatsapp sent %s %r, the clinic knows another; kept", contact.pk, key, value)
            continue
        setattr(contact, key, value)
        changed.append(key)
    for key in ("whatsapp_username", "profile_name"):
        value = getattr(identity, key)
        if value and getattr(contact, key) != value:
            setattr(contact, key, value)
            changed.append(key)
    if not contact.name and identity.profile_name:
        contact.name = identity.profile_name
        changed.append("name")
    if changed:
        if "whatsapp_username" in changed:
            _free_username(contact.clinic_id, contact.whatsapp_username, keep=contact.pk)
        contact.updated_at = timezone.now()
        contact.save(update_fields=[*changed, "updated_at"])


def _free_username(clinic_id: int, username: str, *, keep: int | None = None) -> None:
    """A WhatsApp username can pass to another person: whoever held it before in the clinic lets it go."""
    if username:
        Contact.objects.filter(clinic_id=clinic_id, whatsapp_username=username).exclude(pk=keep).update(
            whatsapp_username="", updated_at=timezone.now()
        )


@transaction.atomic
def change_contact_identifier(*, contact: Contact, key: str, value: str) -> tuple[Contact, bool]:
    """Give the patient a new phone or WhatsApp user id, as WhatsApp reported it (a number change).

    Returns the contact and whether it changed. When another patient of the clinic holds the new value
    already, nothing changes and the conflict is logged: two patients are never merged silently.
    """
    if key not in ("phone", "whatsapp_user_id"):
        raise InvalidInput(f"{key!r} cannot be changed this way.", field="key")
    value = normalize_phone(value) if key == "phone" else _clean_id(value, key)
    contact = Contact.objects.select_for_update().get(pk=contact.pk)
    if not value or getattr(contact, key) == value:
        return contact, False
    holder = Contact.objects.filter(clinic_id=contact.clinic_id, **{key: value}).exclude(pk=contact.pk).first()
    if holder is not None:
        logger.warning(
            "patient #%s changed %s to one patient #%s of clinic %s has; kept apart",
            contact.pk,
            key,
            holder.pk,
            contact.clinic_id,
        )
        return contact, False
    setattr(contact, key, value)
    contact.updated_at = timezone.now()
    contact.save(update_fields=[key, "updated_at"])
    return contact, True
