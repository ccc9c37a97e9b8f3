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
from conversations.models.contacts import WHATSAPP_USER_ID_PATTERN
from conversations.phones import canonical_phone, digits_of

logger = logging.getLogger(__name__)

E164_DIGITS = re.compile(r"^[1-9][0-9]{7,14}$")
WHATSAPP_USER_ID = re.compile(WHATSAPP_USER_ID_PATTERN)
MAX_WHATSAPP_ID = 150
# The identifiers that find a patient, in the order they are trusted (DESIGN §6: by phone, else by BSUID).
KEYS = ("phone", "whatsapp_user_id", "whatsapp_parent_user_id")


def normalize_phone(phone: str) -> str:
    """The canonical E.164 digits of what a person or a provider wrote ('+55 (11) 98765-4321' and WhatsApp's
    '551187654321' → '5511987654321'; conversations.phones): what every lookup by phone compares."""
    digits = digits_of(phone)
    if not E164_DIGITS.match(digits):
        raise InvalidInput(
            f"{phone!r} is not a phone number in international form; use e.g. +55 11 98765-4321.", field="phone"
        )
    return canonical_phone(digits)


def whatsapp_id_of(wa_id: str) -> str:
    """WhatsApp's id for a number as it gave it (digits only, no canonical form): where replies go."""
    digits = digits_of(wa_id)
    return digits if E164_DIGITS.match(digits) else ""


def _clean_id(value: str, field: str) -> str:
    value = (value or "").strip()
    if value and (len(value) > MAX_WHATSAPP_ID or not WHATSAPP_USER_ID.match(value)):
        raise InvalidInput(
            f"{value[:40]!r} is not a WhatsApp user id; use it as WhatsApp sends it, e.g. BR.1502576394655843.",
            field=field,
        )
    return value


def usable_identifier(key: str, value: str) -> str:
    """The identifier normalised, or "" when it is malformed (the caller logs and goes on without it)."""
    try:
        return normalize_phone(value) if key == "phone" else _clean_id(value, key)
    except InvalidInput:
        return ""


@dataclass(frozen=True)
class PatientIdentity:
    """Who a message is from, as far as the sender told: any of these may be empty, not all of them."""

    phone: str = ""
    whatsapp_user_id: str = ""
    whatsapp_parent_user_id: str = ""
    whatsapp_username: str = ""
    profile_name: str = ""
    whatsapp_id: str = ""  # the number as WhatsApp gave it (`wa_id`), when it did: replies go there

    @classmethod
    def of(
        cls,
        *,
        phone: str = "",
        whatsapp_user_id: str = "",
        whatsapp_parent_user_id: str = "",
        whatsapp_username: str = "",
        profile_name: str = "",
        whatsapp_id: str = "",
    ) -> "PatientIdentity":
        """Checked and normalised; InvalidInput when nothing identifies the patient or a value is malformed."""
        identity = cls(
            whatsapp_id=whatsapp_id_of(whatsapp_id) if whatsapp_id else "",
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


def find_or_create_contact(
    *, clinic: Clinic, identity: PatientIdentity, name: str = "", create: bool = True
) -> tuple[Contact | None, bool]:
    """The clinic's patient for `identity`, created if new (None with `create=False`), locked until the
    caller's transaction ends.

    Found by phone when the phone is known to the clinic, else by WhatsApp user id, else by parent id;
    the other identifiers of the payload are then recorded on that patient. When they belong to
    another patient already, the two are kept apart (never merged silently) and the conflict is logged.

    Call inside a transaction. The row lock serialises concurrent deliveries for one patient (an album
    arrives as several webhooks at once), so they never create a second conversation or message.
    """
    contact, others, matched_by = _locked_matches(clinic, identity)
    created = False
    if contact is None and not create:
        return None, False
    if contact is None:
        contact, created = _create(clinic, identity, name)
        if contact is None:
            # Another delivery created the patient between our read and our insert (the unique
            # constraints caught it): it is committed now, so the second look finds and locks it.
            contact, others, matched_by = _locked_matches(clinic, identity)
            if contact is None:
                raise IntegrityError(f"patient of {sorted(identity.keys)} neither found nor created")
    if not created:
        taken = {key for other in others for key in _shared(other, identity)}
        _record_identifiers(contact, identity, taken=taken, matched_by=matched_by)
        if name and not contact.name:
            contact.name, contact.updated_at = name.strip()[:200], timezone.now()
            contact.save(update_fields=["name", "updated_at"])
    for other in others:
        logger.warning(
            "whatsapp identifiers %s of one message belong to patients #%s and #%s of clinic %s; kept apart",
            sorted(_shared(other, identity)),
            contact.pk,
            other.pk,
            clinic.pk,
        )
    return contact, created


def _create(clinic: Clinic, identity: PatientIdentity, name: str) -> tuple[Contact | None, bool]:
    """A new patient with every identifier given; (None, False) when a concurrent delivery made it first.

    The name is the clinic's for the patient (n8n may give one); WhatsApp's profile name is kept apart
    and shown until the clinic names the patient.
    """
    fields = {"clinic": clinic, "name": (name or "").strip()[:200], "profile_name": identity.profile_name}
    fields |= identity.keys | {"whatsapp_id": identity.whatsapp_id}
    for username in dict.fromkeys((identity.whatsapp_username, "")):
        _free_username(clinic.pk, username)
        try:
            with transaction.atomic():
                return Contact.objects.create(**fields, whatsapp_username=username), True
        except IntegrityError:
            if _locked_matches(clinic, identity)[0] is not None:
                return None, False
            # Only the username clashed (another new patient took it at this instant): keep it off.
    return None, False


def _locked_matches(clinic: Clinic, identity: PatientIdentity) -> tuple[Contact | None, list[Contact], str]:
    """The patient the identity routes to, any other patient holding one of its identifiers, and the
    key that routed (phone first); all locked."""
    match = Q()
    for key, value in identity.keys.items():
        match |= Q(**{key: value})
    # One statement for the usual case, a patient who wrote before: find and lock.
    found = list(Contact.objects.select_for_update(no_key=True).filter(match, clinic=clinic).order_by("pk"))
    for key in KEYS:
        value = getattr(identity, key)
        chosen = next((c for c in found if value and getattr(c, key) == value), None)
        if chosen is not None:
            return chosen, [c for c in found if c.pk != chosen.pk], key
    return None, [], ""


def _shared(contact: Contact, identity: PatientIdentity) -> set[str]:
    return {key for key, value in identity.keys.items() if getattr(contact, key) == value}


def _record_identifiers(contact: Contact, identity: PatientIdentity, *, taken: set[str], matched_by: str) -> None:
    """Fill in what the patient's row lacks, and keep the profile current.

    A user id that differs from the stored one is taken when the patient was found by phone (WhatsApp
    issues a new id with some changes, and the notice may not come); a phone that differs is kept, since
    only a `user_changed_number` notice moves it.
    """
    changed = []
    for key, value in identity.keys.items():
        current = getattr(contact, key)
        if key in taken or current == value:
            continue
        if current and not (matched_by == "phone" and key != "phone"):
            logger.warning("patient #%s: whatsapp sent another %s than the clinic knows; kept", contact.pk, key)
            continue
        if current:
            logger.info("patient #%s: %s changed on WhatsApp (found by phone); updated", contact.pk, key)
        setattr(contact, key, value)
        changed.append(key)
    for key in ("whatsapp_username", "profile_name", "whatsapp_id"):  # what WhatsApp shows now is kept
        value = getattr(identity, key)
        if value and getattr(contact, key) != value:
            setattr(contact, key, value)
            changed.append(key)
    if not changed:
        return
    if "whatsapp_username" in changed:
        _free_username(contact.clinic_id, contact.whatsapp_username, keep=contact.pk)
    contact.updated_at = timezone.now()
    try:
        with transaction.atomic():
            contact.save(update_fields=[*changed, "updated_at"])
    except IntegrityError:
        # A concurrent delivery gave one of these to another patient meanwhile: keep what is stored.
        logger.warning("patient #%s: identifiers %s taken concurrently; not recorded", contact.pk, changed)
        contact.refresh_from_db()


def _free_username(clinic_id: int, username: str, *, keep: int | None = None) -> None:
    """A WhatsApp username can pass to another person: whoever held it before in the clinic lets it go."""
    if not username:
        return
    # Saved one by one (there is at most one): the save's signal refreshes what shows that patient.
    for holder in Contact.objects.filter(clinic_id=clinic_id, whatsapp_username=username).exclude(pk=keep):
        holder.whatsapp_username, holder.updated_at = "", timezone.now()
        holder.save(update_fields=["whatsapp_username", "updated_at"])


@transaction.atomic
def change_contact_identifiers(*, contact: Contact, new: dict[str, str]) -> tuple[Contact, list[str]]:
    """Give the patient the new phone, user id and parent id WhatsApp reported (a number or id change),
    all or nothing. Returns the contact and the names of the identifiers that changed.

    When another patient of the clinic holds any of the new values, nothing changes and the conflict
    is logged: two patients are never merged silently, nor one left half-moved.
    """
    wanted = {}
    for key, value in new.items():
        if key not in KEYS:
            raise InvalidInput(f"{key!r} cannot be changed this way.", field="key")
        if value:
            wanted[key] = normalize_phone(value) if key == "phone" else _clean_id(value, key)
    contact = Contact.objects.select_for_update(no_key=True).get(pk=contact.pk)
    wanted = {key: value for key, value in wanted.items() if getattr(contact, key) != value}
    whatsapp_id = whatsapp_id_of(new.get("phone") or "")
    if whatsapp_id and not wanted and contact.whatsapp_id != whatsapp_id:
        # The same number in WhatsApp's other form (with or without the ninth digit): replies go there now.
        contact.whatsapp_id, contact.updated_at = whatsapp_id, timezone.now()
        contact.save(update_fields=["whatsapp_id", "updated_at"])
        return contact, ["whatsapp_id"]
    if not wanted:
        return contact, []
    holders = Contact.objects.filter(clinic_id=contact.clinic_id).exclude(pk=contact.pk)
    match = Q()
    for key, value in wanted.items():
        match |= Q(**{key: value})
    holder = holders.filter(match).first()
    if holder is not None:
        logger.warning(
            "patient #%s changed %s to values patient #%s of clinic %s has; kept apart, nothing changed",
            contact.pk,
            sorted(wanted),
            holder.pk,
            contact.clinic_id,
        )
        return contact, []
    for key, value in wanted.items():
        setattr(contact, key, value)
    written = [*wanted, "updated_at"]
    if whatsapp_id:  # WhatsApp's own form of the new number is where replies go now
        contact.whatsapp_id = whatsapp_id
        written.append("whatsapp_id")
    contact.updated_at = timezone.now()
    contact.save(update_fields=written)
    return contact, sorted(wanted)
