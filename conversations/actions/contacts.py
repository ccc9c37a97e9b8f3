"""Actions on contacts: finding or creating a patient by phone number."""

import re

from django.db import IntegrityError, transaction
from django.utils import timezone

from conversations.errors import InvalidInput
from conversations.models import Clinic, Contact

E164_DIGITS = re.compile(r"^[1-9][0-9]{7,14}$")


def normalize_phone(phone: str) -> str:
    """E.164 digits from what a person or a provider wrote ('+55 (11) 98765-4321' → '5511987654321')."""
    digits = re.sub(r"\D", "", phone or "")
    if not E164_DIGITS.match(digits):
        raise InvalidInput(
            f"{phone!r} is not a phone number in international form; use e.g. +55 11 98765-4321.", field="phone"
        )
    return digits


def find_or_create_contact(*, clinic: Clinic, phone: str, name: str = "") -> tuple[Contact, bool]:
    """The clinic's contact for `phone`, created if new, locked until the caller's transaction ends.

    Call inside a transaction. The row lock serialises concurrent deliveries for one patient (an album
    arrives as several webhooks at once), so they never create a second conversation or message.
    """
    phone = normalize_phone(phone)
    name = (name or "").strip()[:200]
    # The usual case, a patient who wrote before, is one statement: find and lock.
    contact, created = Contact.objects.select_for_update().filter(clinic=clinic, phone=phone).first(), False
    if contact is None:
        try:
            with transaction.atomic():
                contact, created = Contact.objects.get_or_create(clinic=clinic, phone=phone, defaults={"name": name})
        except IntegrityError:
            pass  # another delivery created it between our read and our insert; the unique constraint caught it
        contact = Contact.objects.select_for_update().get(clinic=clinic, phone=phone)
    if name and not contact.name:
        contact.name = name
        contact.updated_at = timezone.now()
        contact.save(update_fields=["name", "updated_at"])
    return contact, created
