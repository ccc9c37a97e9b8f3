"""Who answers the patient: the n8n assistant until staff take the conversation (by replying, or Assumir);
then the assistant's answers are kept as suggestions, never sent, until it is given back."""

import pytest

from conversations.actions.inbound import receive_inbound_message
from conversations.actions.integrations import create_integration_token
from conversations.actions.messages import send_outbound_message
from conversations.models import AuditEvent, Message, Note
from conversations.tests.test_webhook_n8n import post
from realtime.models import Event

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("simulated_number"),
]  # the cached detail moves on commit, as in production
PHONE = "+55 11 98765-4321"


@pytest.fixture
def token(clinic):
    return create_integration_token(clinic=clinic, name="n8n")[1]


@pytest.fixture
def conversation(clinic):
    return receive_inbound_message(clinic=clinic, phone=PHONE, contact_name="Maria", content="Oi").conversation


def assistant_says(token, text: str, slug: str = "aurora"):
    return post({"phone": PHONE, "content": text, "sender_type": "ai"}, token, slug=slug)


def detail(api, conversation) -> dict:
    return api.get(f"/api/conversations/{conversation.pk}/").json()


def test_the_assistant_answers_until_staff_reply_then_its_answers_are_suggestions(
    jwt_client, member, token, conversation
):
    api = jwt_client(member)
    assert detail(api, conversation)["answered_by"] == "assistant"
    assert detail(api, conversation)["conversation"]["answered_by"] == "assistant"
    assert assistant_says(token, "Olá! Sou a assistente.").status_code == 201

    send_outbound_message(conversation=conversation, sender=member, content="Aqui é a Júlia, da recepção")
    assert detail(api, conversation)["answered_by"] == "staff"
    told = Event.objects.filter(type="conversation:updated").order_by("-seq").first()
    assert "answered_by" in told.data["changed"] and told.data["conversation"]["answered_by"] == "staff"

    messages_before = Message.objects.count()
    answer = assistant_says(token, "Posso agendar para amanhã?")
    assert answer.status_code == 202, answer.content
    kept = Note.objects.get(suggestion=True)
    assert answer.json() == {
        "suggestion_id": kept.pk,
        "conversation_id": conversation.pk,
        "answered_by": "staff",
        "sent": False,
    }
    assert Message.objects.count() == messages_before, "not stored as a message, so never sent"
    assert kept.author is None and kept.content == "Posso agendar para amanhã?"
    frame = Event.objects.filter(type="note:new").get()
    assert frame.data["note"]["suggestion"] is True and frame.data["note"]["author"] is None
    assert [n["suggestion"] for n in detail(api, conversation)["notes"]] == [True]


def test_staff_take_over_and_give_back_through_the_api(jwt_client, member, token, conversation):
    api = jwt_client(member)
    url = f"/api/conversations/{conversation.pk}/"
    taken = api.patch(url, {"answered_by": "staff"}, format="json")
    assert taken.status_code == 200 and taken.json()["answered_by"] == "staff"
    assert assistant_says(token, "Sugestão").status_code == 202
    given = api.patch(url, {"answered_by": "assistant"}, format="json")
    assert given.status_code == 200 and given.json()["answered_by"] == "assistant"
    assert assistant_says(token, "De volta").status_code == 201
    assert Message.objects.filter(sender_type="ai", content="De volta").count() == 1
    audits = AuditEvent.objects.filter(action="conversation.answered_by").order_by("pk")
    assert [a.detail for a in audits] == [{"from": "assistant", "to": "staff"}, {"from": "staff", "to": "assistant"}]
    refused = api.patch(url, {"answered_by": "robot"}, format="json")
    assert refused.status_code == 400 and "answered_by" in refused.json()["errors"]


def test_a_patients_message_is_stored_as_ever_when_staff_answer(token, conversation, member):
    send_outbound_message(conversation=conversation, sender=member, content="Oi, Maria")
    reply = post({"phone": PHONE, "content": "Obrigada", "external_id": "n8n-p1"}, token)
    assert reply.status_code == 201 and not Note.objects.exists()


def test_another_clinics_assistant_cannot_leave_suggestions_here(
    jwt_client, member, other_clinic, conversation, make_member
):
    send_outbound_message(conversation=conversation, sender=member, content="Oi, Maria")
    theirs = create_integration_token(clinic=other_clinic, name="n8n")[1]
    answer = assistant_says(theirs, "Olá", slug=other_clinic.slug)
    assert answer.status_code == 201, "their own new conversation, not ours"
    assert not Note.objects.filter(conversation=conversation).exists()
    assert Message.objects.get(content="Olá").clinic_id == other_clinic.pk


def test_a_retried_assistant_answer_is_kept_once(token, conversation, member):
    send_outbound_message(conversation=conversation, sender=member, content="Oi, Maria")
    body = {"phone": PHONE, "content": "Posso ajudar?", "sender_type": "ai", "external_id": "n8n-ai-7"}
    first, again = post(body, token), post(body, token)
    assert first.status_code == again.status_code == 202
    assert first.json() == again.json() and Note.objects.filter(suggestion=True).count() == 1


def test_an_answer_stored_before_staff_took_over_is_a_repeat_not_a_suggestion(jwt_client, token, conversation, member):
    body = {"phone": PHONE, "content": "Sou a assistente", "sender_type": "ai", "external_id": "n8n-ai-8"}
    stored = post(body, token)
    assert stored.status_code == 201
    jwt_client(member).patch(f"/api/conversations/{conversation.pk}/", {"answered_by": "staff"}, format="json")
    retried = post(body, token)
    assert retried.status_code == 200 and retried.json()["message_id"] == stored.json()["message_id"]
    assert not Note.objects.exists()


def test_a_resolved_conversation_goes_back_to_the_assistant(jwt_client, member, token, conversation):
    send_outbound_message(conversation=conversation, sender=member, content="Oi, Maria")
    api = jwt_client(member)
    resolved = api.patch(f"/api/conversations/{conversation.pk}/", {"status": "resolved"}, format="json").json()
    assert resolved["answered_by"] == "assistant"
    receive_inbound_message(clinic=conversation.clinic, phone=PHONE, content="Oi de novo, meses depois")
    assert assistant_says(token, "Olá! Como posso ajudar?").status_code == 201, "answered, not a suggestion"
