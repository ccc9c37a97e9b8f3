"""What every clinic-scoped API view shares: the caller's clinic and lookups confined to it."""

from rest_framework.exceptions import NotFound
from rest_framework.views import APIView

from conversations.models import Clinic, Conversation, Membership, Message
from conversations.selectors import conversation_of, message_in


def client_ip(request) -> str | None:
    return request.META.get("REMOTE_ADDR")


class ClinicAPIView(APIView):
    """A view acting in the caller's clinic; objects of any other clinic do not exist here (404)."""

    @property
    def membership(self) -> Membership:
        return self.request.auth.membership

    @property
    def clinic(self) -> Clinic:
        return self.membership.clinic

    def get_conversation(self, conversation_id: int) -> Conversation:
        conversation = conversation_of(self.clinic, conversation_id)
        if conversation is None:
            raise NotFound("No such conversation in your clinic.", code="not_found")
        return conversation

    def get_message(self, conversation: Conversation, message_id: int) -> Message:
        """A message of a conversation already found in the caller's clinic; 404 for any other."""
        message = message_in(conversation, message_id)
        if message is None:
            raise NotFound("No such message in this conversation.", code="not_found")
        return message
