"""Cache bookkeeping: a committed change to what the list and detail show bumps the clinic's version."""

from django.db import transaction
from django.db.models.signals import post_delete, post_save

from conversations import read_cache
from conversations.models import Contact, Conversation, ConversationAction, Message, MessageAttachment


def _clinic_id(instance) -> int | None:
    if isinstance(instance, MessageAttachment):
        return Message.objects.filter(pk=instance.message_id).values_list("clinic_id", flat=True).first()
    return instance.clinic_id


def bump_on_commit(sender, instance, **kwargs) -> None:
    clinic_id = _clinic_id(instance)
    if clinic_id is not None:
        transaction.on_commit(lambda: read_cache.bump_clinic_version(clinic_id))


def connect() -> None:
    for model in (Contact, Conversation, ConversationAction, Message, MessageAttachment):
        post_save.connect(bump_on_commit, sender=model, dispatch_uid=f"read-cache-{model.__name__}-save")
        post_delete.connect(bump_on_commit, sender=model, dispatch_uid=f"read-cache-{model.__name__}-delete")
