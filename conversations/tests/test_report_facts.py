"""The reports' facts and the waiting time along every write path (DESIGN §12: facts are the actions'
record): the webhook's fast path, reactions, the WhatsApp Business app, templates and resends, merges, and
two deliveries at once."""

import json
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from conftest import APP_SECRET, whatsapp_payload
from conversations import clinic_hours
from conversations.actions.inbound import receive_inbound_message
from conversations.actions.messages import (
    resend_failed_message,
    send_outbound_message,
    send_template_message,
    update_message_status,
)
from conversations.actions.patients import merge_patients
from conversations.management.commands.simulate_patients import notification
from conversations.message_templates import SIMULATED
from conversations.models import ActivityFact, Contact, Conversation, ConversationFact, Message, Role
from conversations.tests.test_business_hours import CLOSED_WEEK, OPEN_WEEK, set_hours
from conversations.webhooks.whatsapp import receive_notification, signature_of

pytestmark = pytest.mark.django_db(transaction=True)
NUMBER = "106540352242922"
PHONE = "5511987654321"


@pytest.fixture
def admin(clinic, make_member):
    return make_member(clinic, Role.ADMIN)


def post(payload: dict) -> dict:
    body = json.dumps(payload).encode()
    status, answer = receive_notification(body, signature_of(body, APP_SECRET))
    assert status == 200, answer
    return answer


def patient_writes(text: str, n: int = 0, ago: int = 0) -> Conversation:
    payload = notification(NUMBER, text, n, phone=PHONE, name="Maria Souza")
    payload["entry"][0]["changes"][0]["value"]["messages"][0]["timestamp"] = str(int(time.time()) - ago)
    post(payload)
    return Conversation.objects.get(contact__phone=PHONE)


def fresh(name: str) -> dict:
    """A recorded notification, stamped now (the away message answers only what is fresh)."""
    payload = whatsapp_payload(name)
    value = payload["entry"][0]["changes"][0]["value"]
    for message in value.get("messages") or value.get("message_echoes"):
        message["timestamp"] = str(int(time.time()))
    return payload


def awaiting(conversation: Conversation):
    return Conversation.objects.values_list("awaiting_since", flat=True).get(pk=conversation.pk)


def test_the_fast_path_starts_a_wait_on_an_answered_conversation_and_keeps_a_running_one(
    clinic, admin, member, whatsapp_channel
):
    if connection.vendor != "postgresql":
        pytest.skip("the fast path is PostgreSQL's")
    set_hours(clinic, admin, OPEN_WEEK, away_mode="off")
    conversation = patient_writes("Oi", 0, ago=120)  # the first: three statements, a new patient
    first = awaiting(conversation)
    assert first is not None
    patient_writes("Ainda aí?", 1, ago=60)  # the usual message: one statement
    assert awaiting(conversation) == first, "the wait began with the first unanswered message"
    send_outbound_message(conversation=conversation, sender=member, content="Sim!")
    assert awaiting(conversation) is None
    patient_writes("Obrigada, e o preço?", 2)
    later = awaiting(conversation)
    assert later is not None and later > first
    assert sum(ActivityFact.objects.values_list("inbound", flat=True)) == 3
    assert sum(ActivityFact.objects.values_list("opened", flat=True)) == 1
    assert ConversationFact.objects.get().first_response_by == "staff"


def test_a_reaction_asks_for_nothing_no_wait_and_no_away_message(clinic, admin, member, whatsapp_channel):
    set_hours(clinic, admin, OPEN_WEEK, away_mode="off")
    conversation = receive_inbound_message(clinic=clinic, phone=PHONE, content="Oi", external_id="w1").conversation
    send_outbound_message(conversation=conversation, sender=member, content="Olá! Confirmado.")
    set_hours(clinic, admin, CLOSED_WEEK)
    post(fresh("reaction"))
    assert Message.objects.filter(metadata__has_key="reaction").count() == 1
    assert awaiting(conversation) is None
    assert not Message.objects.filter(metadata__auto_reply="away").exists()
    assert sum(ActivityFact.objects.values_list("inbound", flat=True)) == 2, "still a message in"


def test_a_reply_from_the_whatsapp_business_app_answers_as_staff(clinic, admin, whatsapp_channel):
    set_hours(clinic, admin, OPEN_WEEK, away_mode="off")
    conversation = receive_inbound_message(
        clinic=clinic, phone=PHONE, content="Oi", external_id="w1", happened_at=timezone.now() - timedelta(minutes=4)
    ).conversation
    post(fresh("echo_text"))
    assert awaiting(conversation) is None
    fact = ConversationFact.objects.get(conversation_id=conversation.pk)
    assert (fact.first_response_by, fact.first_responder_id, fact.staff_replies) == ("staff", None, 1)
    assert 230 <= fact.first_response_seconds <= 260
    assert ActivityFact.objects.get(staff_replies=1).user_id == 0, "no staff member of ours wrote it"


def test_a_template_is_an_answer_and_a_resend_is_the_same_answer_once(clinic, admin, member, simulated_number):
    conversation = receive_inbound_message(clinic=clinic, phone=PHONE, content="Oi", external_id="w1").conversation
    sent = send_template_message(
        conversation=conversation, sender=member, template=SIMULATED[1], variables={"1": "Maria"}
    ).message
    fact = ConversationFact.objects.get(conversation_id=conversation.pk)
    assert (fact.first_response_by, fact.first_responder_id, fact.staff_replies) == ("staff", member.pk, 1)
    update_message_status(message=sent, status="failed", error="recusada")
    resend_failed_message(message=Message.objects.get(pk=sent.pk), sender=member)
    fact.refresh_from_db()
    assert fact.staff_replies == 1, "a resend is not another reply"
    assert sum(ActivityFact.objects.values_list("staff_replies", flat=True)) == 1


def test_a_merge_leaves_one_attendance_running_the_earlier_wait_and_the_later_away_message(
    clinic, admin, member, simulated_number
):
    now = timezone.now()
    kept = receive_inbound_message(
        clinic=clinic, phone=PHONE, content="Pelo telefone", happened_at=now - timedelta(minutes=5)
    )
    other = receive_inbound_message(
        clinic=clinic, whatsapp_user_id="BR.1A2B3C", content="Pelo usuário", happened_at=now - timedelta(minutes=20)
    )
    send_outbound_message(conversation=other.conversation, sender=member, content="Olá!")
    receive_inbound_message(
        clinic=clinic, whatsapp_user_id="BR.1A2B3C", content="E então?", happened_at=now - timedelta(minutes=15)
    )
    Conversation.objects.filter(pk=kept.conversation.pk).update(away_sent_for=now - timedelta(days=3))
    Conversation.objects.filter(pk=other.conversation.pk).update(away_sent_for=now + timedelta(hours=9))
    merge_patients(kept=kept.contact, merged=Contact.objects.get(pk=other.contact.pk), actor=admin)
    joined = Conversation.objects.get(pk=kept.conversation.pk)
    assert joined.awaiting_since is not None and joined.awaiting_since <= now - timedelta(minutes=5)
    assert joined.away_sent_for == now + timedelta(hours=9)
    (running,) = ConversationFact.objects.filter(conversation_id=joined.pk, resolved_at__isnull=True)
    assert running.staff_replies == 1 and running.first_response_by == "staff", "the other record's answer kept"
    from conversations.actions.conversations import set_conversation_status

    set_conversation_status(conversation=joined, status="resolved", actor=member)
    assert ConversationFact.objects.filter(resolved_at__isnull=False).count() == 1, "one resolution, one attendance"


def test_two_messages_at_once_in_a_closed_clinic_get_one_away_message(clinic, admin, whatsapp_channel, settings):
    import respx

    set_hours(clinic, admin, CLOSED_WEEK)
    receive_inbound_message(clinic=clinic, phone=PHONE, content="Oi", external_id="w0")
    Message.objects.filter(metadata__auto_reply="away").delete()  # the first night's: the next two are racing
    Conversation.objects.update(away_sent_for=None)
    clinic_hours.forget()
    payloads = [notification(NUMBER, f"Mensagem {n}", n, phone=PHONE, name="Maria Souza") for n in range(2)]
    start = threading.Barrier(2)
    errors = []

    def deliver(payload):
        try:
            start.wait()
            post(payload)
        except Exception as error:  # noqa: BLE001 (reported below)
            errors.append(error)
        finally:
            connection.close()

    with respx.mock(assert_all_called=False):
        threads = [threading.Thread(target=deliver, args=(p,)) for p in payloads]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert not errors
    assert Message.objects.filter(sender_type="patient").count() == 3
    assert Message.objects.filter(metadata__auto_reply="away").count() == 1
