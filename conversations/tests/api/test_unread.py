"""Marking a conversation unread again, for oneself: the badge comes back for that user only, every screen
of theirs is told, and colleagues' reads are left alone."""

import pytest

from conversations.actions.inbound import receive_inbound_message
from conversations.actions.messages import mark_read, send_outbound_message
from conversations.models import Message, ReadMarker
from realtime.models import Event

pytestmark = pytest.mark.usefixtures("simulated_number")  # replies go somewhere: the demo's kind of number


def unread_of(api, conversation) -> int:
    rows = api.get("/api/conversations/").json()["results"]
    return next(row["unread_count"] for row in rows if row["id"] == conversation.pk)


@pytest.mark.django_db(transaction=True)  # the cached counts move on commit
def test_marked_unread_the_patients_latest_message_counts_again_for_that_user_only(
    jwt_client, clinic, member, make_member
):
    colleague = make_member(clinic)
    first = receive_inbound_message(clinic=clinic, phone="5511987654321", content="Oi")
    latest = receive_inbound_message(clinic=clinic, phone="5511987654321", content="Tem horário?").message
    conversation = first.conversation
    send_outbound_message(conversation=conversation, sender=member, content="Temos sim")
    newest = Message.objects.order_by("-id").first()
    for user in (member, colleague):
        mark_read(user=user, conversation=conversation, message=newest)
    api, theirs = jwt_client(member), jwt_client(colleague)
    assert unread_of(api, conversation) == 0

    response = api.post(f"/api/conversations/{conversation.pk}/unread/")
    assert response.status_code == 204, response.content
    assert unread_of(api, conversation) == 1 and unread_of(theirs, conversation) == 0
    assert ReadMarker.objects.get(user=member).last_read_message_id == first.message.pk
    event = Event.objects.filter(type="message:read").order_by("-seq").first()
    assert event.data == {"user_id": member.pk, "message_id": first.message.pk, "unread": True}
    assert latest.pk > first.message.pk

    # Reading it again works as before: the marker moves forward from there.
    read = api.post(f"/api/conversations/{conversation.pk}/read/", {"message_id": newest.pk}, format="json")
    assert read.status_code == 204, read.content
    assert unread_of(api, conversation) == 0


def test_a_single_message_conversation_marked_unread_has_its_marker_before_everything(jwt_client, clinic, member):
    conversation = receive_inbound_message(clinic=clinic, phone="5511987654321", content="Oi").conversation
    api = jwt_client(member)
    assert api.post(f"/api/conversations/{conversation.pk}/unread/").status_code == 204
    assert ReadMarker.objects.get(user=member).last_read_message_id is None
    assert unread_of(api, conversation) == 1


def test_a_conversation_the_patient_never_wrote_in_cannot_be_unread(jwt_client, clinic, member):
    from conversations.models import Contact, Conversation

    contact = Contact.objects.create(clinic=clinic, name="Novo", phone="5511900001111")
    conversation = Conversation.objects.create(clinic=clinic, contact=contact)
    response = jwt_client(member).post(f"/api/conversations/{conversation.pk}/unread/")
    assert response.status_code == 400 and response.json()["code"] == "invalid"
    assert "patient has not written" in response.json()["detail"]
    assert not ReadMarker.objects.exists() and not Event.objects.filter(type="message:read").exists()


@pytest.mark.django_db(transaction=True)
def test_marking_unread_never_marks_anything_read(jwt_client, clinic, member):
    first = receive_inbound_message(clinic=clinic, phone="5511987654321", content="1").message
    conversation = first.conversation
    mark_read(user=member, conversation=conversation, message=first)
    for text in ("2", "3", "4"):
        receive_inbound_message(clinic=clinic, phone="5511987654321", content=text)
    api = jwt_client(member)
    assert unread_of(api, conversation) == 3
    assert api.post(f"/api/conversations/{conversation.pk}/unread/").status_code == 204
    assert unread_of(api, conversation) == 3, "the marker stays further back"
    assert ReadMarker.objects.get(user=member).last_read_message_id == first.pk
