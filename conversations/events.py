"""Builders of the durable events the domain publishes: one function per event type, shapes from wire."""

from conversations import wire
from conversations.models import Conversation, ConversationAction, Message, Note
from realtime import publish


def publish_message_new(message: Message, conversation: Conversation) -> None:
    """The message in brief and whose conversation it is: every screen parses one for each message."""
    publish(
        conversation.clinic_id,
        "message:new",
        {"message": wire.message_brief(message), "contact": wire.patient_brief(conversation.contact)},
        conversation_id=conversation.pk,
    )


def publish_message_updated(message: Message) -> None:
    """The message changed beyond its status (its media arrived, or failed to): the whole message again."""
    publish(
        message.clinic_id,
        "message:updated",
        {"message": wire.message(message)},
        conversation_id=message.conversation_id,
    )


def publish_message_status(message: Message) -> None:
    publish(
        message.clinic_id,
        "message:status",
        {
            "message_id": message.pk,
            "status": message.status,
            "error": message.error,
            "external_id": message.external_id,
            "status_changed_at": wire.iso(message.status_changed_at),
        },
        conversation_id=message.conversation_id,
    )


def publish_message_read(
    *, clinic_id: int, conversation_id: int, user_id: int, message_id: int | None, unread: bool = False
) -> None:
    """That user has read up to that message; `unread`: they marked the conversation unread again (the
    marker moved back, `message_id` null when before the first message)."""
    data = {"user_id": user_id, "message_id": message_id}
    if unread:
        data["unread"] = True
    publish(clinic_id, "message:read", data, conversation_id=conversation_id)


def publish_conversation_new(conversation: Conversation) -> None:
    publish(
        conversation.clinic_id,
        "conversation:new",
        {"conversation": wire.conversation(conversation)},
        conversation_id=conversation.pk,
    )


def publish_conversation_updated(conversation: Conversation, changed: list[str]) -> None:
    publish(
        conversation.clinic_id,
        "conversation:updated",
        {"conversation": wire.conversation(conversation), "changed": changed},
        conversation_id=conversation.pk,
    )


def publish_conversation_deleted(clinic_id: int, conversation_id: int) -> None:
    """The conversation is gone (support deleted it, or its patient): screens drop it."""
    publish(clinic_id, "conversation:deleted", {"conversation_id": conversation_id}, conversation_id=conversation_id)


def publish_conversation_merged(clinic_id: int, conversation_id: int, into_id: int) -> None:
    """The conversation joined another of the same patient (two records merged): its screens move there."""
    publish(
        clinic_id,
        "conversation:deleted",
        {"conversation_id": conversation_id, "merged_into": into_id},
        conversation_id=conversation_id,
    )


def publish_conversation_action(action: ConversationAction) -> None:
    publish(
        action.clinic_id,
        "conversation:action",
        {"action": wire.action(action)},
        conversation_id=action.conversation_id,
    )


def publish_note_new(note: Note, mentions: list) -> None:
    """An internal note: screens of the conversation show it, and the colleagues it mentions are told."""
    publish(
        note.clinic_id, "note:new", {"note": wire.note(note, mentions=mentions)}, conversation_id=note.conversation_id
    )


def publish_quick_replies_changed(clinic_id: int) -> None:
    """The clinic's quick replies changed: composers read them again when next opened."""
    publish(clinic_id, "quick_replies:changed", {})


def publish_clinic_hours(clinic_id: int) -> None:
    """The clinic's business hours changed: waiting times and the open state are shown anew."""
    publish(clinic_id, "clinic:hours", {})


def publish_labels_changed(clinic_id: int) -> None:
    """The clinic's set of labels changed: screens read it again."""
    publish(clinic_id, "labels:changed", {})
