"""Cache bookkeeping: a committed change bumps the versions of the reads that show it (read_cache)."""

from django.db import transaction
from django.db.models.signals import post_delete, post_save

from conversations import read_cache
from conversations.models import Contact, Conversation, ConversationAction, Message, MessageAttachment

# What the list does not show of a message: a change of only these leaves the list's cache alone.
NOT_IN_THE_LIST = frozenset({"status", "error", "status_changed_at", "external_id", "metadata"})


def _scopes(instance, update_fields) -> list[str]:
    if isinstance(instance, Message):
        scopes = [read_cache.detail_scope(instance.conversation_id)]
        if update_fields is None or not set(update_fields) <= NOT_IN_THE_LIST:
            scopes.append(read_cache.list_scope(instance.clinic_id))  # new, deleted, or its text changed
        return scopes
    if isinstance(instance, MessageAttachment):
        conversation_id = Message.objects.filter(pk=instance.message_id).values_list("conversation_id", flat=True)
        return [read_cache.detail_scope(c) for c in conversation_id]
    if isinstance(instance, ConversationAction):
        return [read_cache.detail_scope(instance.conversation_id)]
    if isinstance(instance, Conversation):
        return [read_cache.list_scope(instance.clinic_id), read_cache.detail_scope(instance.pk)]
    if isinstance(instance, Contact):  # shown on every row and detail of the patient's conversations
        conversations = Conversation.objects.filter(contact_id=instance.pk).values_list("pk", flat=True)
        return [read_cache.list_scope(instance.clinic_id), *map(read_cache.detail_scope, conversations)]
    return []


def bump_on_commit(sender, instance, update_fields=None, **kwargs) -> None:
    if not read_cache.enabled():
        return
    scopes = _scopes(instance, update_fields)
    if scopes:
        transaction.on_commit(lambda: read_cache.bump(*scopes))


def connect() -> None:
    for model in (Contact, Conversation, ConversationAction, Message, MessageAttachment):
        post_save.connect(bump_on_commit, sender=model, dispatch_uid=f"read-cache-{model.__name__}-save")
        post_delete.connect(bump_on_commit, sender=model, dispatch_uid=f"read-cache-{model.__name__}-delete")
