"""How domain objects look on the wire: the plain dicts that the API returns and the event frames carry.

One function per shape. The API's serializers in api/outputs.py describe the same shapes for the OpenAPI
schema (a test holds the two together); rendering goes through these, which cost a fraction of a
serializer's time and keep the webhook's frame free of DRF (DESIGN §10). Times are ISO 8601 in UTC ("Z").
"""

from collections.abc import Iterable
from datetime import UTC, datetime

from django.urls import reverse

from conversations.models.messages import ASKS_NOTHING


def iso(value: datetime | None) -> str | None:
    """A time as the API writes it: ISO 8601 in UTC, e.g. 2026-11-22T10:31:02.413000Z."""
    if value is None:
        return None
    text = value.astimezone(UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def user_ref(user) -> dict | None:
    if user is None:
        return None
    return {"id": user.pk, "name": user.get_full_name() or user.get_username()}


def contact_ref(patient) -> dict:
    return {
        "id": patient.pk,
        "name": patient.name,
        "display_name": patient.display_name,
        "phone": patient.phone or None,
        "phone_display": patient.phone_display,
        "whatsapp_user_id": patient.whatsapp_user_id,
        "whatsapp_username": patient.whatsapp_username,
    }


def contact(patient) -> dict:
    return {
        **contact_ref(patient),
        "whatsapp_id": patient.whatsapp_id,
        "whatsapp_parent_user_id": patient.whatsapp_parent_user_id,
        "profile_name": patient.profile_name,
        "email": patient.email,
        "notes": patient.notes,
        "status": patient.status,
        "created_at": iso(patient.created_at),
        "updated_at": iso(patient.updated_at),
    }


def attachment(file) -> dict:
    return {
        "id": file.pk,
        "file_name": file.file_name,
        "content_type": file.content_type,
        "size": file.size,
        # Served only to staff of the clinic (/media/attachments/<id>/), never from storage directly.
        "url": reverse("attachment", args=[file.pk]) if file.file else None,
    }


def message(msg, *, attachments: Iterable | None = None) -> dict:
    """A message; `attachments` when already known (a new inbound message has none), else they are read."""
    files = msg.attachments.all() if attachments is None else attachments
    return {
        "kind": "message",
        "id": msg.pk,
        "conversation_id": msg.conversation_id,
        "direction": msg.direction,
        "sender_type": msg.sender_type,
        "sender": user_ref(msg.sender) if msg.sender_id is not None else None,
        "message_type": msg.message_type,
        "content": msg.content,
        "metadata": msg.metadata,
        "status": msg.status,
        "error": msg.error,
        "external_id": msg.external_id,
        "client_id": str(msg.client_id) if msg.client_id is not None else None,
        "created_at": iso(msg.created_at),
        "status_changed_at": iso(msg.status_changed_at),
        "attachments": [attachment(a) for a in files],
    }


def message_brief(msg) -> dict:
    """A new message as `message:new` tells it: what a screen shows of it at once. Every screen of the
    clinic parses one for each message, so it carries no more than that; the whole message is the API's
    (GET /api/conversations/<id>/messages/). A patient's message that starts no wait (a reaction to the
    clinic's answer, a deletion notice) says so: `"asks_nothing": true`, absent otherwise."""
    brief = {
        "id": msg.pk,
        "conversation_id": msg.conversation_id,
        "direction": msg.direction,
        "sender_type": msg.sender_type,
        "sender": user_ref(msg.sender) if msg.sender_id is not None else None,
        "message_type": msg.message_type,
        "content": msg.content,
        "status": msg.status,
        "client_id": str(msg.client_id) if msg.client_id is not None else None,
        "created_at": iso(msg.created_at),
    }
    if isinstance(msg.metadata, dict) and msg.metadata.keys() & ASKS_NOTHING:
        brief["asks_nothing"] = True
    return brief


def patient_brief(patient) -> dict:
    """Whose conversation it is, as a notification names them."""
    return {"id": patient.pk, "display_name": patient.display_name}


def label(tag) -> dict:
    return {"id": tag.pk, "name": tag.name, "color": tag.color}


def conversation(thread, *, labels: Iterable | None = None) -> dict:
    """A conversation; `labels` when already known (a new conversation has none), else they are read
    (prefetched by the list and the detail)."""
    tags = thread.labels.all() if labels is None else labels
    return {
        "id": thread.pk,
        "status": thread.status,
        "channel": thread.channel,
        "contact": contact_ref(thread.contact),
        "assignee": user_ref(thread.assignee) if thread.assignee_id is not None else None,
        "answered_by": thread.answered_by,
        "labels": [label(tag) for tag in tags],
        "snoozed_until": iso(thread.snoozed_until),
        "awaiting_since": iso(thread.awaiting_since),
        "last_message_at": iso(thread.last_message_at),
        "created_at": iso(thread.created_at),
        "updated_at": iso(thread.updated_at),
    }


def conversation_row(thread) -> dict:
    """A row of the inbox list (conversations_by_activity's annotations); `unread_count` is added per caller."""
    last = None
    if thread.last_message_type is not None:
        last = {
            "content": thread.last_message_content,
            "message_type": thread.last_message_type,
            "direction": thread.last_message_direction,
            "sender_type": thread.last_message_sender_type,
            "sender_id": thread.last_message_sender_id,
        }
    return {**conversation(thread), "last_message": last, "activity_at": iso(thread.activity_at)}


def action(act) -> dict:
    return {
        "id": act.pk,
        "conversation_id": act.conversation_id,
        "action_type": act.action_type,
        "action_data": act.action_data,
        "created_at": iso(act.created_at),
    }


def note(entry, *, mentions: Iterable | None = None) -> dict:
    """An internal note as the timeline shows it; `kind` tells it from a message (`"kind": "message"`)."""
    named = entry.mentions.all() if mentions is None else mentions
    return {
        "kind": "note",
        "id": entry.pk,
        "conversation_id": entry.conversation_id,
        "author": user_ref(entry.author) if entry.author_id is not None else None,
        "suggestion": entry.suggestion,
        "content": entry.content,
        "mentions": [user_ref(user) for user in named],
        "created_at": iso(entry.created_at),
    }


def quick_reply(reply) -> dict:
    return {
        "id": reply.pk,
        "shortcut": reply.shortcut,
        "content": reply.content,
        "buttons": reply.buttons or [],
        "created_at": iso(reply.created_at),
        "updated_at": iso(reply.updated_at),
    }
