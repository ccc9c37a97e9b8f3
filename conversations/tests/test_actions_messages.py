"""The message actions: receiving, sending, status changes and read marks, with the events they log."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from conversations.actions.inbound import receive_inbound_message
from conversations.actions.messages import mark_read, send_outbound_message, status_may_move, update_message_status
from conversations.errors import InvalidInput, NotAMember, WrongClinic
from conversations.models import Contact, Conversation, Message, ReadMarker
from realtime.models import Event

pytestmark = pytest.mark.usefixtures("simulated_number")  # replies go somewhere: the demo's kind of number


def event_types(clinic) -> list[str]:
    return list(Event.objects.filter(clinic=clinic).order_by("seq").values_list("type", flat=True))


def receive(clinic, **fields):
    return receive_inbound_message(clinic=clinic, **{"phone": "+55 11 98765-4321", "content": "Oi", **fields})


# --- receive_inbound_message -------------------------------------------------------------------------


def test_first_message_creates_contact_conversation_and_events(clinic):
    at = datetime(2026, 6, 24, 17, 30, tzinfo=UTC)
    result = receive(clinic, contact_name="Maria Souza", external_id="wamid.A1", happened_at=at)

    assert result.created
    assert result.contact.phone == "5511987654321" and result.contact.name == "Maria Souza"
    assert result.conversation.status == "open" and result.conversation.last_message_at == at
    message = Message.objects.get()
    assert (message.direction, message.sender_type, message.status) == ("inbound", "patient", "delivered")
    assert message.created_at == at, "a message's time is when it happened, not when it was stored"
    assert event_types(clinic) == ["conversation:new", "message:new"]
    new = Event.objects.get(type="message:new")
    assert new.conversation_id == result.conversation.pk
    assert new.data == {
        "message": {
            "id": message.pk,
            "conversation_id": result.conversation.pk,
            "direction": "inbound",
            "sender_type": "patient",
            "sender": None,
            "message_type": "text",
            "content": "Oi",
            "status": "delivered",
            "client_id": None,
            "created_at": "2026-06-24T17:30:00Z",
        },
        "contact": {"id": result.contact.pk, "display_name": "Maria Souza"},
    }, "a message in brief, and whose it is: every screen parses one for each message"
    first = Event.objects.get(type="conversation:new").data["conversation"]
    assert first["contact"] == {
        "id": result.contact.pk,
        "name": "Maria Souza",
        "display_name": "Maria Souza",
        "phone": "5511987654321",
        "phone_display": "+55 11 98765-4321",
        "whatsapp_user_id": "",
        "whatsapp_username": "",
    }


def test_the_same_external_id_twice_stores_one_message_and_publishes_once(clinic):
    first = receive(clinic, external_id="wamid.DUP")
    again = receive(clinic, external_id="wamid.DUP", content="changed")

    assert not again.created and again.message.pk == first.message.pk
    assert Message.objects.count() == 1 and Message.objects.get().content == "Oi"
    assert event_types(clinic) == ["conversation:new", "message:new"]


def test_later_messages_join_the_open_conversation(clinic):
    first = receive(clinic, external_id="wamid.1")
    second = receive(clinic, external_id="wamid.2")
    assert second.conversation.pk == first.conversation.pk
    assert Conversation.objects.count() == 1 and Contact.objects.count() == 1


def test_a_message_reopens_a_resolved_conversation(clinic):
    first = receive(clinic, external_id="wamid.1")
    Conversation.objects.filter(pk=first.conversation.pk).update(status="resolved")

    second = receive(clinic, external_id="wamid.2")

    assert second.conversation.pk == first.conversation.pk
    assert Conversation.objects.get().status == "open"
    assert event_types(clinic)[-2:] == ["conversation:updated", "message:new"]


def test_an_older_message_arriving_late_does_not_move_activity_back(clinic):
    now = timezone.now()
    receive(clinic, external_id="wamid.new", happened_at=now)
    receive(clinic, external_id="wamid.old", happened_at=now - timedelta(hours=1))
    assert Conversation.objects.get().last_message_at == now


def test_a_known_name_is_not_overwritten_and_an_unknown_one_is_filled(clinic):
    receive(clinic, external_id="wamid.1")
    assert Contact.objects.get().name == ""
    receive(clinic, external_id="wamid.2", contact_name="Maria")
    receive(clinic, external_id="wamid.3", contact_name="Outra Pessoa")
    assert Contact.objects.get().name == "Maria"


def test_same_phone_in_two_clinics_makes_two_contacts(clinic, other_clinic):
    receive(clinic, external_id="wamid.1")
    receive(other_clinic, external_id="wamid.1")
    assert Contact.objects.filter(phone="5511987654321").count() == 2
    assert Message.objects.filter(external_id="wamid.1").count() == 2
    assert event_types(other_clinic) == ["conversation:new", "message:new"]


def test_unknown_message_types_are_kept_as_unsupported(clinic):
    result = receive(clinic, message_type="hologram", metadata={"raw": {"type": "hologram"}})
    assert result.message.message_type == "unsupported"
    assert result.message.metadata == {"raw": {"type": "hologram"}}


def test_a_message_from_the_assistant_is_stored_as_sent_outbound(clinic):
    result = receive(clinic, sender_type="ai", content="Olá, sou a assistente.")
    assert (result.message.direction, result.message.status) == ("outbound", "sent")


@pytest.mark.parametrize("phone", ["", "abc", "12345", "+0 11 9999"])
def test_a_bad_phone_is_refused_and_nothing_is_stored(clinic, phone):
    with pytest.raises(InvalidInput) as refused:
        receive(clinic, phone=phone)
    assert refused.value.field == "phone"
    assert not Contact.objects.exists() and not Event.objects.exists()


# --- send_outbound_message ---------------------------------------------------------------------------


@pytest.fixture
def conversation(clinic):
    return receive(clinic, external_id="wamid.start", contact_name="Maria").conversation


def test_sending_stores_a_pending_message_and_publishes_it(conversation, member):
    client_id = uuid.uuid4()
    result = send_outbound_message(conversation=conversation, sender=member, content=" Bom dia! ", client_id=client_id)

    message = result.message
    assert result.created
    assert (message.direction, message.status, message.content, message.sender) == (
        "outbound",
        "pending",
        "Bom dia!",
        member,
    )
    event = Event.objects.filter(type="message:new").latest("seq")
    assert event.data["message"]["client_id"] == str(client_id)
    assert event.data["message"]["sender"] == {"id": member.pk, "name": "Júlia Carvalho"}
    assert conversation.clinic.audit_events.filter(
        action="message.sent", object_id=str(message.pk), actor=member
    ).exists()


def test_the_same_client_id_twice_returns_the_first_message(conversation, member):
    client_id = uuid.uuid4()
    first = send_outbound_message(conversation=conversation, sender=member, content="Oi", client_id=client_id)
    events_before = Event.objects.count()
    again = send_outbound_message(conversation=conversation, sender=member, content="Oi de novo", client_id=client_id)

    assert not again.created and again.message.pk == first.message.pk
    assert conversation.messages.filter(direction="outbound").count() == 1
    assert Event.objects.count() == events_before


def test_staff_of_another_clinic_cannot_send(conversation, outsider):
    with pytest.raises(NotAMember):
        send_outbound_message(conversation=conversation, sender=outsider, content="Oi")
    assert not conversation.messages.filter(direction="outbound").exists()


def test_a_deactivated_user_cannot_send(conversation, member):
    member.is_active = False
    member.save()
    with pytest.raises(NotAMember):
        send_outbound_message(conversation=conversation, sender=member, content="Oi")


@pytest.mark.parametrize("content", ["", "   ", "x" * 4097])
def test_empty_or_oversize_text_is_refused(conversation, member, content):
    with pytest.raises(InvalidInput) as refused:
        send_outbound_message(conversation=conversation, sender=member, content=content)
    assert refused.value.field == "content"


def test_replying_to_a_resolved_conversation_reopens_it(conversation, member):
    Conversation.objects.filter(pk=conversation.pk).update(status="resolved")
    send_outbound_message(conversation=conversation, sender=member, content="Voltando ao assunto")
    assert Conversation.objects.get(pk=conversation.pk).status == "open"


# --- update_message_status ---------------------------------------------------------------------------


@pytest.fixture
def outbound(conversation, member):
    return send_outbound_message(conversation=conversation, sender=member, content="Oi").message


def test_status_moves_forward_and_publishes(outbound):
    message, changed = update_message_status(message=outbound, status="sent", external_id="wamid.OUT")
    assert changed and message.status == "sent" and message.external_id == "wamid.OUT"
    event = Event.objects.latest("seq")
    assert event.type == "message:status"
    assert event.data["message_id"] == outbound.pk and event.data["status"] == "sent"


def test_a_late_status_never_moves_backwards(outbound):
    update_message_status(message=outbound, status="read")
    events_before = Event.objects.count()
    message, changed = update_message_status(message=outbound, status="delivered")
    assert not changed and message.status == "read"
    assert Message.objects.get(pk=outbound.pk).status == "read"
    assert Event.objects.count() == events_before


def test_failed_records_the_reason_from_pending_or_sent(outbound):
    message, changed = update_message_status(message=outbound, status="failed", error="(#131047) 24h window closed")
    assert changed and message.error == "(#131047) 24h window closed"


def test_failed_is_ignored_once_delivered_and_final_once_reached(outbound, conversation, member):
    update_message_status(message=outbound, status="delivered")
    assert update_message_status(message=outbound, status="failed", error="late")[1] is False
    other = send_outbound_message(conversation=conversation, sender=member, content="Outra").message
    update_message_status(message=other, status="failed", error="refused")
    assert update_message_status(message=other, status="read")[1] is False


@pytest.mark.parametrize(
    "current,new,allowed",
    [
        ("pending", "sent", True),
        ("pending", "read", True),
        ("sent", "delivered", True),
        ("delivered", "read", True),
        ("read", "delivered", False),
        ("delivered", "sent", False),
        ("sent", "sent", False),
        ("pending", "failed", True),
        ("sent", "failed", True),
        ("delivered", "failed", False),
        ("failed", "sent", False),
    ],
)
def test_status_order(current, new, allowed):
    assert status_may_move(current, new) is allowed


def test_an_unknown_status_is_refused(outbound):
    with pytest.raises(InvalidInput):
        update_message_status(message=outbound, status="teleported")


# --- mark_read -------------------------------------------------------------------------------------------


def test_mark_read_moves_forward_only_and_publishes(clinic, conversation, member):
    first = Message.objects.get(external_id="wamid.start")
    later = receive(clinic, external_id="wamid.later").message

    marker, moved = mark_read(user=member, conversation=conversation, message=later)
    assert moved and marker.last_read_message_id == later.pk
    event = Event.objects.latest("seq")
    assert event.type == "message:read" and event.data == {"user_id": member.pk, "message_id": later.pk}

    marker, moved = mark_read(user=member, conversation=conversation, message=first)
    assert not moved and ReadMarker.objects.get().last_read_message_id == later.pk


def test_mark_read_refuses_a_message_of_another_conversation(clinic, other_clinic, conversation, member):
    foreign = receive(other_clinic, external_id="wamid.x").message
    with pytest.raises(WrongClinic):
        mark_read(user=member, conversation=conversation, message=foreign)
    assert not ReadMarker.objects.exists()


def test_mark_read_refuses_staff_of_another_clinic(conversation, outsider):
    with pytest.raises(NotAMember):
        mark_read(user=outsider, conversation=conversation, message=conversation.messages.first())


def test_a_known_patients_message_is_checked_for_a_repeat_once(clinic):
    receive_inbound_message(clinic=clinic, phone="5511987654321", content="Oi", external_id="wamid.1")
    with CaptureQueriesContext(connection) as queries:
        receive_inbound_message(clinic=clinic, phone="5511987654321", content="De novo", external_id="wamid.2")
    repeat_checks = [q["sql"] for q in queries if q["sql"].startswith('SELECT 1 AS "a" FROM "conversations_message"')]
    assert len(repeat_checks) == 1, "the webhook's hot path: one locking lookup, one repeat check"
