"""The API renders with conversations.wire and describes its shapes with api.outputs (the OpenAPI schema):
the two must say the same, field for field."""

import uuid

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from conversations import selectors, wire
from conversations.actions.conversations import add_conversation_action, assign_conversation
from conversations.actions.inbound import receive_inbound_message
from conversations.actions.messages import send_outbound_message
from conversations.api import outputs
from conversations.models import Message, MessageAttachment

pytestmark = pytest.mark.usefixtures("simulated_number")  # replies go somewhere: the demo's kind of number


def plain(data):
    if isinstance(data, dict):
        return {key: plain(value) for key, value in data.items()}
    if isinstance(data, list):
        return [plain(item) for item in data]
    return data


def test_every_shape_is_what_the_schema_describes(clinic, member):
    first = receive_inbound_message(
        clinic=clinic, phone="5511987654321", profile_name="Maria", content="Oi", external_id="wamid.1"
    )
    conversation = first.conversation
    assign_conversation(conversation=conversation, assignee=member, actor=member)
    photo = SimpleUploadedFile("receita.png", b"\x89PNG" + b"0" * 10, content_type="image/png")
    reply = send_outbound_message(
        conversation=conversation, sender=member, content="Segue", client_id=uuid.uuid4(), attachment=photo
    ).message
    action = add_conversation_action(conversation=conversation, action_type="appointment_created", action_data={"n": 1})
    conversation = selectors.conversation_of(clinic, conversation.pk)
    row = selectors.conversation_page(clinic, limit=1)[0]

    pairs = [
        (wire.contact_ref(first.contact), outputs.ContactRefOut(first.contact).data),
        (wire.contact(first.contact), outputs.ContactOut(first.contact).data),
        (wire.attachment(MessageAttachment.objects.get()), outputs.AttachmentOut(MessageAttachment.objects.get()).data),
        (wire.conversation(conversation), outputs.ConversationOut(conversation).data),
        (wire.conversation_row(row), outputs.ConversationRowOut(row).data),
        (wire.action(action), outputs.ActionOut(action).data),
    ]
    for message in (Message.objects.get(pk=first.message.pk), Message.objects.get(pk=reply.pk)):
        pairs.append((wire.message(message), outputs.MessageOut(message).data))
    for ours, schema in pairs:
        assert ours == plain(schema)
        assert list(ours) == list(schema), "and in the same order"


def test_message_new_tells_a_part_of_the_message_as_the_api_has_it(clinic, member):
    message = receive_inbound_message(clinic=clinic, phone="5511987654321", content="Oi").message
    brief, whole = wire.message_brief(message), wire.message(message)
    assert brief == {key: whole[key] for key in brief}


def test_message_new_says_when_a_patients_message_starts_no_wait(clinic):
    asks = receive_inbound_message(clinic=clinic, phone="5511987654321", content="Oi").message
    # A reaction to a message the clinic no longer has is kept as its emoji.
    reaction = {"reaction": {"message_id": "wamid.gone", "emoji": "👍"}}
    thanks = receive_inbound_message(clinic=clinic, phone="5511987654321", content="👍", metadata=reaction).message
    assert "asks_nothing" not in wire.message_brief(asks)
    assert wire.message_brief(thanks)["asks_nothing"] is True
    assert thanks.conversation.awaiting_since == asks.created_at, "the wait is the first message's"
