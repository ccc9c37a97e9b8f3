"""Bookkeeping on commit (STYLE: the one kind of work signals do): a committed change bumps the versions of
the cached reads that show it (read_cache), and a change of who may see a clinic tells the event stream,
which re-checks that user's open sockets in every process."""

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_out
from django.db import transaction
from django.db.models.signals import post_delete, post_save

import realtime
from conversations import access, clinic_hours, push, read_cache
from conversations.actions.push import forget_login_devices, forget_member_devices
from conversations.models import (
    ApiSession,
    BusinessHours,
    Clinic,
    Contact,
    Conversation,
    ConversationAction,
    Membership,
    Message,
    MessageAttachment,
    Note,
    ReadMarker,
    WhatsAppChannel,
)
from conversations.webhooks import whatsapp_channels
from realtime import broadcast

# What the list does not show of a message: a change of only these leaves the list's cache alone.
NOT_IN_THE_LIST = frozenset({"status", "error", "status_changed_at", "external_id", "metadata"})


def _scopes(instance, update_fields) -> list[str]:
    if isinstance(instance, ReadMarker):  # the reader's unread counts
        return [read_cache.reads_scope(instance.user_id)]
    if isinstance(instance, Message):
        scopes = [read_cache.detail_scope(instance.conversation_id)]
        if update_fields is None or not set(update_fields) <= NOT_IN_THE_LIST:
            scopes.append(read_cache.list_scope(instance.clinic_id))  # new, deleted, or its text changed
        return scopes
    if isinstance(instance, MessageAttachment):
        conversation_id = Message.objects.filter(pk=instance.message_id).values_list("conversation_id", flat=True)
        return [read_cache.detail_scope(c) for c in conversation_id]
    if isinstance(instance, ConversationAction | Note):
        return [read_cache.detail_scope(instance.conversation_id)]
    if isinstance(instance, Conversation):
        return [read_cache.list_scope(instance.clinic_id), read_cache.detail_scope(instance.pk)]
    if isinstance(instance, Contact):  # shown on every row and detail of the patient's conversations
        conversations = Conversation.objects.filter(contact_id=instance.pk).values_list("pk", flat=True)
        return [read_cache.list_scope(instance.clinic_id), *map(read_cache.detail_scope, conversations)]
    return []


def bump_on_commit(sender, instance, update_fields=None, **kwargs) -> None:
    if read_cache.enabled():
        read_cache.bump_on_commit(_scopes(instance, update_fields))


def _user_id(instance) -> int | None:
    return instance.pk if isinstance(instance, get_user_model()) else instance.user_id


def access_changed_on_commit(sender, instance, update_fields=None, **kwargs) -> None:
    """A user saved or deleted (deactivated, say), a membership added, changed or removed, an API session
    revoked: that user's sockets are re-checked once the change is committed."""
    if update_fields is not None and set(update_fields) <= {"last_login"}:
        return  # a login, not a change of access
    user_id = _user_id(instance)
    if user_id is not None:
        _access_changed(user_id)


def logged_out(sender, request, user, **kwargs) -> None:
    if user is not None:
        # Django sends this signal before it deletes the session: end the session first, or the re-check
        # set off below could find it still there and leave the user's sockets open.
        if request is not None and hasattr(request, "session"):
            forget_login_devices(request.session.session_key or "")  # this browser's pushes end with it
            request.session.delete()
        _access_changed(user.pk)


def _access_changed(user_id: int) -> None:
    # Forgetting what this process remembered is safe at once (it is checked again); telling every process
    # waits for the commit, so that their checks see the change.
    access.forget_members({"user_id": user_id})
    transaction.on_commit(lambda: realtime.access_changed(user_id), robust=True)


def channels_changed(sender, instance, **kwargs) -> None:
    """A WhatsApp channel changed: the webhook's secrets and routes are read again, here at once and in
    every process after the commit."""
    whatsapp_channels.forget()
    transaction.on_commit(lambda: broadcast.control({"type": "whatsapp_channels"}), robust=True)


def hours_changed(sender, instance, **kwargs) -> None:
    """A clinic's hours or time zone changed: read again, here at once and in every process after the commit."""
    clinic_id = instance.pk if isinstance(instance, Clinic) else instance.clinic_id
    clinic_hours.forget({"clinic_id": clinic_id})
    if read_cache.enabled():  # waiting marks and the reports' target: read afresh
        read_cache.bump_on_commit([read_cache.list_scope(clinic_id)])
    transaction.on_commit(lambda: broadcast.control({"type": "clinic_hours", "clinic_id": clinic_id}), robust=True)


def membership_ended(sender, instance, **kwargs) -> None:
    """Someone left a clinic: their devices are told nothing more of it."""
    forget_member_devices(instance.user_id, instance.clinic_id)


def connect() -> None:
    broadcast.on_control("push_devices", push.forget)
    post_delete.connect(membership_ended, sender=Membership, dispatch_uid="push-membership-ended")
    broadcast.on_control("whatsapp_channels", whatsapp_channels.forget)
    broadcast.on_control("clinic_hours", clinic_hours.forget)
    post_save.connect(hours_changed, sender=BusinessHours, dispatch_uid="clinic-hours-save")
    post_save.connect(hours_changed, sender=Clinic, dispatch_uid="clinic-hours-clinic-save")
    broadcast.on_control("access", access.forget_members)
    post_save.connect(channels_changed, sender=WhatsAppChannel, dispatch_uid="whatsapp-channels-save")
    post_delete.connect(channels_changed, sender=WhatsAppChannel, dispatch_uid="whatsapp-channels-delete")
    for model in (Contact, Conversation, ConversationAction, Message, MessageAttachment, Note, ReadMarker):
        post_save.connect(bump_on_commit, sender=model, dispatch_uid=f"read-cache-{model.__name__}-save")
        post_delete.connect(bump_on_commit, sender=model, dispatch_uid=f"read-cache-{model.__name__}-delete")
    for model in (get_user_model(), Membership, ApiSession):
        post_save.connect(access_changed_on_commit, sender=model, dispatch_uid=f"access-{model.__name__}-save")
        post_delete.connect(access_changed_on_commit, sender=model, dispatch_uid=f"access-{model.__name__}-delete")
    user_logged_out.connect(logged_out, dispatch_uid="access-logged-out")
