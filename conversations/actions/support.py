"""Changes the support team makes in the admin: saved, recorded in the clinic's audit trail, and told to
open screens where they show (a contact's name or phone)."""

from collections.abc import Iterable

from django.contrib.auth.models import AbstractBaseUser
from django.db import models, transaction
from django.utils import timezone

from conversations import events
from conversations.actions.audit import record_audit
from conversations.models import Clinic, Contact, Conversation, Membership, MessageAttachment, WhatsAppChannel
from conversations.storage import delete_on_commit
from realtime import log

SHOWN_CONTACT_FIELDS = {"name", "phone", "profile_name", "whatsapp_username", "whatsapp_user_id"}


def _clinic_id(obj: models.Model) -> int:
    return obj.pk if isinstance(obj, Clinic) else obj.clinic_id


def _changed_fields(obj: models.Model, editable: Iterable[str] | None) -> list[str]:
    """The stored fields `obj` changes among those support may edit, by name (never their values: some
    are secrets)."""
    before = type(obj).objects.filter(pk=obj.pk).values().first()
    if before is None:
        return []
    names = editable if editable is not None else [f.name for f in obj._meta.concrete_fields]
    fields = [obj._meta.get_field(name) for name in names]
    return sorted(f.name for f in fields if f.concrete and getattr(obj, f.attname) != before[f.attname])


def _save(
    obj: models.Model, actor: AbstractBaseUser, editable: Iterable[str] | None, ip: str | None, what: str
) -> list[str]:
    """Save what support created or edited, audited as `<what>.created` or `<what>.changed` with the names
    of the fields it changed (never their values: some are secrets); returns those names.

    An edit writes only the changed fields among `editable` (the form's), so it never writes back a
    value the application moved meanwhile, such as a clinic's event seq.
    """
    created = obj._state.adding
    changed = [] if created else _changed_fields(obj, editable)
    if not created and not changed:
        return []
    written = changed
    if not created and any(f.name == "updated_at" for f in obj._meta.concrete_fields):
        obj.updated_at = timezone.now()
        written = [*changed, "updated_at"]
    obj.save(update_fields=None if created else written)
    action = f"{what}.created" if created else f"{what}.changed"
    record_audit(clinic_id=_clinic_id(obj), actor=actor, action=action, obj=obj, detail={"fields": changed}, ip=ip)
    return changed


@transaction.atomic
def change_contact(
    contact: Contact, *, actor: AbstractBaseUser, editable: Iterable[str] | None = None, ip: str | None = None
) -> list[str]:
    """Support adds a patient or corrects one (renames them, fixes the phone): `contact.created` or
    `contact.changed`; the open screens showing them are told."""
    changed = _save(contact, actor, editable, ip, "contact")
    if SHOWN_CONTACT_FIELDS & set(changed):
        for conversation in contact.conversations.select_related("contact", "assignee"):
            events.publish_conversation_updated(conversation, ["contact"])
    return changed


@transaction.atomic
def set_channel_credentials(
    channel: WhatsAppChannel, *, actor: AbstractBaseUser, editable: Iterable[str] | None = None, ip: str | None = None
) -> list[str]:
    """Support connects a WhatsApp number or changes its credentials: `whatsapp_channel.created` or
    `.changed`, by field name only. Every process reads the numbers and secrets again (signals)."""
    return _save(channel, actor, editable, ip, "whatsapp_channel")


@transaction.atomic
def save_clinic(
    clinic: Clinic, *, actor: AbstractBaseUser, editable: Iterable[str] | None = None, ip: str | None = None
) -> list[str]:
    """Support creates a clinic or changes its name, time zone or retention: `clinic.created`/`.changed`."""
    return _save(clinic, actor, editable, ip, "clinic")


@transaction.atomic
def add_membership(
    membership: Membership, *, actor: AbstractBaseUser, editable: Iterable[str] | None = None, ip: str | None = None
) -> list[str]:
    """Support gives a user a place in a clinic, or changes their role: `membership.created`/`.changed`.
    A changed role takes effect on that user's open sockets and tokens at once (signals)."""
    return _save(membership, actor, editable, ip, "membership")


@transaction.atomic
def remove_membership(membership: Membership, *, actor: AbstractBaseUser, ip: str | None = None) -> None:
    """Support takes a user out of a clinic: `membership.removed`; their sockets close at once (signals)."""
    record_audit(clinic_id=membership.clinic_id, actor=actor, action="membership.removed", obj=membership, ip=ip)
    membership.delete()


SAVES = {
    Contact: change_contact,
    WhatsAppChannel: set_channel_credentials,
    Clinic: save_clinic,
    Membership: add_membership,
}


def save_by_support(
    *, obj: models.Model, actor: AbstractBaseUser, editable: Iterable[str] | None = None, ip: str | None = None
) -> list[str]:
    """The admin's save, handed to the named action of the object's kind."""
    return SAVES[type(obj)](obj, actor=actor, editable=editable, ip=ip)


@transaction.atomic
def delete_by_support(*, obj: models.Model, actor: AbstractBaseUser, ip: str | None = None) -> None:
    """The admin's deletion: a membership is removed (its own action); anything else is deleted, audited
    as `support.deleted` by type and id, with its conversations' screens told and the log's copies erased."""
    if isinstance(obj, Membership):
        remove_membership(obj, actor=actor, ip=ip)
        return
    # Only the object's type and id are kept: an erased patient leaves no name or phone behind.
    record_audit(clinic_id=_clinic_id(obj), actor=actor, action="support.deleted", obj=obj, ip=ip)
    gone = []
    if isinstance(obj, Contact):
        gone = list(obj.conversations.values_list("clinic_id", "pk"))
    elif isinstance(obj, Conversation):
        gone = [(obj.clinic_id, obj.pk)]
    files = list(MessageAttachment.objects.filter(message__conversation_id__in=[c for _, c in gone]))
    obj.delete()
    if gone:  # the log's copies of what was said go too, and the stored files, which no cascade removes
        log.erase_data(gone[0][0], [conversation_id for _, conversation_id in gone])
        delete_on_commit(files)
    for clinic_id, conversation_id in gone:
        events.publish_conversation_deleted(clinic_id, conversation_id)
