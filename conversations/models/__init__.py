"""The domain model of DESIGN §2, one module per area."""

from conversations.models.api_sessions import ApiSession
from conversations.models.audit import AuditEvent
from conversations.models.clinics import Clinic, Membership, Role
from conversations.models.contacts import Contact
from conversations.models.conversations import Conversation, ConversationAction, Label, Note, ReadMarker
from conversations.models.deliveries import DeliveryAttempt, PendingStatus
from conversations.models.hours import AwayMode, BusinessHours
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
from conversations.models.push import PushSubscription
from conversations.models.replies import QuickReply
from conversations.models.reports import ActivityFact, ConversationFact, Responder

__all__ = [
    "ActivityFact",
    "ApiSession",
    "AwayMode",
    "BusinessHours",
    "AuditEvent",
    "Clinic",
    "Contact",
    "Conversation",
    "ConversationAction",
    "ConversationFact",
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
    "PushSubscription",
    "QuickReply",
    "ReadMarker",
    "Responder",
    "Role",
    "SenderType",
    "WhatsAppChannel",
]
