"""The domain model of DESIGN §2, one module per area."""

from conversations.models.api_sessions import ApiSession
from conversations.models.audit import AuditEvent
from conversations.models.clinics import Clinic, Membership, Role
from conversations.models.contacts import Contact
from conversations.models.conversations import Conversation, ConversationAction, Label, Note, ReadMarker
from conversations.models.deliveries import DeliveryAttempt, PendingStatus
from conversations.models.integrations import IntegrationToken, WhatsAppChannel
from conversations.models.messages import (
    Direction,
    Message,
    MessageAttachment,
    MessageStatus,
    MessageType,
    SenderType,
)
from conversations.models.privacy import ErasedIdentifier
from conversations.models.replies import QuickReply

__all__ = [
    "ApiSession",
    "AuditEvent",
    "Clinic",
    "Contact",
    "Conversation",
    "ConversationAction",
    "DeliveryAttempt",
    "Direction",
    "ErasedIdentifier",
    "IntegrationToken",
    "Label",
    "Membership",
    "Message",
    "MessageAttachment",
    "MessageStatus",
    "MessageType",
    "Note",
    "PendingStatus",
    "QuickReply",
    "ReadMarker",
    "Role",
    "SenderType",
    "WhatsAppChannel",
]
