"""Changes the support team makes in the admin: saved, recorded in the clinic's audit trail, and told to
open screens where they show (a contact's name or phone)."""

from collections.abc import Iterable

from django.contrib.auth.models import AbstractBaseUser
from django.db import models, transaction
from django.utils import timezone

from conversations import events
from conversations.actions.audit import record_audit
from conversations.models import Clinic, Contact, Conversation, MessageAttachment
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


@transaction.atomic
def save_by_support(
    *, obj: models.Model, actor: AbstractBaseUser, editable: Iterable[str] | None = None, ip: str | None = None
) -> list[str]:
    """Save what support created or edited; returns the names of the fields it changed.

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
    record_audit(
        clinic_id=_clinic_id(obj),
        actor=actor,
        action="support.created" if created else "support.changed",
        obj=obj,
        detail={"fields": changed},
        ip=ip,
    )
    if isinstance(obj, Contact) and SHOWN_CONTACT_FIELDS & set(changed):
        for conversation in obj.conversations.select_related("contact", "assignee"):
            events.publish_conversation_updated(conversation, ["contact"])
    return changed


@transaction.atomic
def delete_by_support(*, obj: models.Model, actor: AbstractBaseUser, ip: str | None = None) -> None:
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
