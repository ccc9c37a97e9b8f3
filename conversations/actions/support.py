"""Changes the support team makes in the admin: saved, recorded in the clinic's audit trail, and told to
open screens where they show (a contact's name or phone)."""

from collections.abc import Iterable

from django.contrib.auth.models import AbstractBaseUser
from django.db import models, transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from conversations import events
from conversations.actions.audit import record_audit
from conversations.errors import InvalidInput
from conversations.models import Clinic, Contact, Membership, MessageAttachment, WhatsAppChannel
from conversations.phones import canonical_phone, digits_of
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
    stored = {f.name: f for f in obj._meta.concrete_fields}
    names = stored if editable is None else [name for name in editable if name in stored]
    return sorted(name for name in names if getattr(obj, stored[name].attname) != before[stored[name].attname])


def _save(
    obj: models.Model,
    actor: AbstractBaseUser,
    editable: Iterable[str] | None,
    ip: str | None,
    what: str,
    installation: bool = False,
) -> list[str]:
    """Save what support created or edited, audited as `<what>.created` or `<what>.changed` with the names
    of the fields it changed (never their values: some are secrets); returns those names. An
    `installation` change (an account) belongs to no one clinic's trail.

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
    clinic_id = None if installation else _clinic_id(obj)  # after the save: a new clinic has its id now
    record_audit(clinic_id=clinic_id, actor=actor, action=action, obj=obj, detail={"fields": changed}, ip=ip)
    return changed


@transaction.atomic
def change_contact(
    contact: Contact, *, actor: AbstractBaseUser, editable: Iterable[str] | None = None, ip: str | None = None
) -> list[str]:
    """Support adds a patient or corrects one (renames them, fixes the phone): `contact.created` or
    `contact.changed`; the open screens showing them are told. A patient belongs to their clinic for ever:
    moving one to another clinic is refused (their history would follow them there)."""
    contact.phone = canonical_phone(digits_of(contact.phone)) if contact.phone else ""  # one form, however typed
    stored = None
    if not contact._state.adding:
        stored = Contact.objects.filter(pk=contact.pk).values_list("clinic_id", "phone").first()
        if stored is not None and stored[0] != contact.clinic_id:
            raise InvalidInput("A patient belongs to their clinic for ever; it cannot be moved.", field="clinic")
    changed = _save(contact, actor, editable, ip, "contact")
    if stored is not None and "phone" in changed and contact.whatsapp_id:
        # A corrected number: WhatsApp's form of the old one must not keep receiving their replies. The
        # patient's next message gives WhatsApp's form of the new one.
        contact.whatsapp_id = ""
        contact.save(update_fields=["whatsapp_id"])
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
    """Support creates a clinic or changes its name, time zone or retention: `clinic.created`/`.changed`. A
    new time zone moves the clinic's business hours: its open screens are told (`clinic:hours`)."""
    changed = _save(clinic, actor, editable, ip, "clinic")
    if "timezone" in changed:
        events.publish_clinic_hours(clinic.pk)
    return changed


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


@transaction.atomic
def remove_channel(channel: WhatsAppChannel, *, actor: AbstractBaseUser, ip: str | None = None) -> None:
    """Support disconnects a WhatsApp number: `whatsapp_channel.removed`. Its conversations stay; a
    reply to one goes out from the clinic's other number. A clinic left with none sends nothing: replies
    are refused before they are stored, and one already queued fails with the reason (never a tick)."""
    record_audit(clinic_id=channel.clinic_id, actor=actor, action="whatsapp_channel.removed", obj=channel, ip=ip)
    channel.delete()


@transaction.atomic
def delete_contact(contact: Contact, *, actor: AbstractBaseUser, ip: str | None = None) -> None:
    """Support deletes a patient record: `contact.deleted` by id only (an erased patient leaves no name or
    phone behind); each of their conversations' screens is told it is gone, and the log's copies of what
    was said are erased with the stored files, which no cascade removes."""
    record_audit(clinic_id=contact.clinic_id, actor=actor, action="contact.deleted", obj=contact, ip=ip)
    gone = list(contact.conversations.values_list("pk", flat=True))
    files = list(MessageAttachment.objects.filter(message__conversation_id__in=gone))
    contact.delete()
    if gone:
        log.erase_data(contact.clinic_id, gone)
        delete_on_commit(files)
    for conversation_id in gone:
        events.publish_conversation_deleted(contact.clinic_id, conversation_id)


# --- Accounts: the installation's users and permission groups, no one clinic's ------------------------


@transaction.atomic
def save_account(
    account: models.Model, *, actor: AbstractBaseUser, editable: Iterable[str] | None = None, ip: str | None = None
) -> list[str]:
    """Support creates or changes a user or a permission group (`user.created`, `group.changed`…): by
    field name only, never a password or its hash. A deactivated user's sockets close at once (signals)."""
    return _save(account, actor, editable, ip, account._meta.model_name, installation=True)


@transaction.atomic
def set_account_relations(
    account: models.Model, relations: dict[str, Iterable], *, actor: AbstractBaseUser, ip: str | None = None
) -> list[str]:
    """Support sets a user's groups and permissions, or a group's permissions: `<kind>.changed` with the
    names of the relations that changed."""
    changed = []
    for name, chosen in relations.items():
        chosen = list(chosen)
        related = getattr(account, name)
        if set(related.values_list("pk", flat=True)) != {item.pk for item in chosen}:
            related.set(chosen)
            changed.append(name)
    if changed:
        action = f"{account._meta.model_name}.changed"
        record_audit(clinic_id=None, actor=actor, action=action, obj=account, detail={"fields": changed}, ip=ip)
    return changed


@sensitive_variables("password")
@transaction.atomic
def set_account_password(
    user: AbstractBaseUser, *, password: str | None, actor: AbstractBaseUser, ip: str | None = None
) -> None:
    """Support sets a user's password (`user.password_set`), or with None turns password sign-in off
    (`user.password_disabled`)."""
    if password is None:
        user.set_unusable_password()
    else:
        user.set_password(password)
    user.save(update_fields=["password"])
    action = "user.password_set" if password is not None else "user.password_disabled"
    record_audit(clinic_id=None, actor=actor, action=action, obj=user, ip=ip)


@transaction.atomic
def delete_account(account: models.Model, *, actor: AbstractBaseUser, ip: str | None = None) -> None:
    """Support deletes a user (their memberships go with them, and their sockets close) or a permission
    group: `user.deleted` / `group.deleted`, by id only."""
    record_audit(clinic_id=None, actor=actor, action=f"{account._meta.model_name}.deleted", obj=account, ip=ip)
    account.delete()
