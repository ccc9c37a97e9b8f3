"""Actions staff take on a patient's record: correcting it (name, e-mail, observations), and merging two
records of one patient into one (DESIGN §12: one patient, one history)."""

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone

from conversations import events
from conversations.actions.audit import record_audit
from conversations.errors import InvalidInput, NotAMember
from conversations.models import Contact, Conversation
from conversations.selectors import is_member

MAX_NAME_CHARS = 200
MAX_NOTES_CHARS = 4000
CORRECTABLE = ("name", "email", "notes")


@transaction.atomic
def correct_patient_record(
    *, contact: Contact, actor: AbstractBaseUser, changes: dict[str, str], ip: str | None = None
) -> tuple[Contact, list[str]]:
    """Staff correct what the clinic knows of a patient: the name it calls them (WhatsApp's profile name is
    kept apart and never overwrites it), their e-mail, and the observations about them. Returns the patient
    and the fields that changed; every open screen of theirs is told, and the change is audited by field
    name (never by value)."""
    if not is_member(actor, contact.clinic_id):
        raise NotAMember("Only staff of the patient's clinic can correct their record.")
    unknown = sorted(set(changes) - set(CORRECTABLE))
    if unknown:
        raise InvalidInput(f"{unknown[0]!r} is not part of a patient's record staff correct.", field=unknown[0])
    cleaned = {field: (value or "").strip() for field, value in changes.items()}
    if len(cleaned.get("name", "")) > MAX_NAME_CHARS:
        raise InvalidInput(f"A name holds at most {MAX_NAME_CHARS} characters.", field="name")
    if len(cleaned.get("notes", "")) > MAX_NOTES_CHARS:
        raise InvalidInput(f"The observations hold at most {MAX_NOTES_CHARS} characters.", field="notes")
    if cleaned.get("email"):
        try:
            validate_email(cleaned["email"])
        except ValidationError:
            raise InvalidInput(f"{cleaned['email']!r} is not an e-mail address.", field="email") from None
    # Locked: two screens correcting at once are applied one after the other, each on the other's result.
    contact = Contact.objects.select_for_update().get(pk=contact.pk)
    if contact.status == Contact.Status.ERASED:
        raise InvalidInput("This patient was erased (LGPD): their record is not kept any more.", field="contact")
    changed = sorted(field for field, value in cleaned.items() if getattr(contact, field) != value)
    if not changed:
        return contact, []
    for field in changed:
        setattr(contact, field, cleaned[field])
    contact.updated_at = timezone.now()
    contact.save(update_fields=[*changed, "updated_at"])
    record_audit(
        clinic_id=contact.clinic_id,
        actor=actor,
        action="contact.corrected",
        obj=contact,
        detail={"fields": changed},
        ip=ip,
    )
    for conversation in Conversation.objects.filter(clinic_id=contact.clinic_id, contact=contact).select_related(
        "contact", "assignee"
    ):
        events.publish_conversation_updated(conversation, ["contact"])
    return contact, changed
