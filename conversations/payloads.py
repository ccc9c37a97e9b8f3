"""How domain objects look on the wire, for the event frames: the API's output serializers, as plain data."""

from conversations.api.outputs import ActionOut, ConversationOut, MessageOut
from conversations.models import Conversation, ConversationAction, Message


def _plain(data) -> dict:
    # DRF's ReturnDict and OrderedDicts as a plain dict, JSON-ready (dates already ISO strings).
    return {key: _plain(value) if isinstance(value, dict) else value for key, value in data.items()}


def conversation_data(conversation: Conversation) -> dict:
    return _plain(ConversationOut(conversation).data)


def message_data(message: Message) -> dict:
    return _plain(MessageOut(message).data)


def action_data(action: ConversationAction) -> dict:
    return _plain(ActionOut(action).data)
