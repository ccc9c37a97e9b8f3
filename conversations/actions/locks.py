"""Row locks the actions take, each with the reason it is needed."""

from conversations.models import Conversation


def lock_conversation(conversation: Conversation) -> Conversation:
    """A fresh copy of the conversation, its row locked until the caller's transaction ends.

    Concurrent sends with one client_id, status changes and assignments then see each other's commits.
    """
    return (
        Conversation.objects.select_for_update(of=("self",))
        .select_related("contact", "assignee")
        .get(pk=conversation.pk)
    )
