"""The n8n webhook: messages and actions from the clinic's automations, behind its integration token."""

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from conversations.actions.inbound import receive_inbound_message
from conversations.actions.integrations import create_integration_token, revoke_integration_token
from conversations.models import ConversationAction, IntegrationToken, Message

MESSAGE = {"phone": "+55 11 98765-4321", "name": "Maria Souza", "content": "Quero remarcar", "external_id": "n8n-1"}


@pytest.fixture
def token(clinic):
    return create_integration_token(clinic=clinic, name="n8n")[1]


def post(body, token=None, slug="aurora", **extra):
    client = APIClient()
    if token:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client.post(f"/webhooks/n8n/{slug}/", body, format="json", **extra)


def test_a_patients_message_is_stored_once(token):
    first = post(MESSAGE, token)
    assert first.status_code == 201 and first.json()["created"] is True
    again = post(MESSAGE, token)
    assert again.status_code == 200 and again.json()["message_id"] == first.json()["message_id"]
    message = Message.objects.get()
    assert (message.direction, message.sender_type, message.content) == ("inbound", "patient", "Quero remarcar")
    assert message.conversation.contact.name == "Maria Souza" and message.conversation.contact.phone == "5511987654321"


def test_the_assistant_answers_a_patient_known_by_whatsapp_user_id_alone(token, clinic):
    patient = receive_inbound_message(clinic=clinic, whatsapp_user_id="BR.13491208655302741918", content="Oi")
    reply = {"whatsapp_user_id": "BR.13491208655302741918", "content": "Olá! Como posso ajudar?", "sender_type": "ai"}
    assert post(reply, token).status_code == 201
    assert Message.objects.get(sender_type="ai").conversation == patient.conversation
    action = {"whatsapp_user_id": "BR.13491208655302741918", "action_type": "appointment_created"}
    assert post(action, token).status_code == 201
    assert ConversationAction.objects.get().conversation == patient.conversation


def test_an_action_by_user_id_finds_the_patient_when_the_phone_is_unknown(token, clinic):
    patient = receive_inbound_message(clinic=clinic, whatsapp_user_id="BR.13491208655302741918", content="Oi")
    action = {"phone": "5511900000009", "whatsapp_user_id": "BR.13491208655302741918", "action_type": "exam_sent"}
    assert post(action, token).status_code == 201
    assert ConversationAction.objects.get().conversation == patient.conversation


@pytest.mark.parametrize("patient", [{}, {"phone": ""}, {"phone": " ", "whatsapp_user_id": ""}])
def test_a_message_naming_no_patient_is_a_400(token, patient):
    response = post({"content": "Oi", **patient}, token)
    assert response.status_code == 400 and "phone" in response.json()["errors"]
    assert not Message.objects.exists()


def test_the_assistants_reply_is_stored_as_sent(token):
    post(MESSAGE, token)
    reply = {
        "phone": "5511987654321",
        "content": "Claro! Temos quinta às 14h.",
        "sender_type": "ai",
        "timestamp": "2026-11-20T23:10:00-03:00",
    }
    assert post(reply, token).status_code == 201
    message = Message.objects.get(sender_type="ai")
    assert (message.direction, message.status) == ("outbound", "sent")
    assert message.created_at.isoformat() == "2026-11-21T02:10:00+00:00"


def test_an_action_joins_the_patients_conversation(token):
    post(MESSAGE, token)
    action = {
        "phone": "5511987654321",
        "action_type": "appointment_created",
        "action_data": {"date": "2026-11-26", "time": "14:00"},
    }
    response = post(action, token)
    assert response.status_code == 201 and response.json()["action_type"] == "appointment_created"
    assert ConversationAction.objects.get().conversation == Message.objects.get().conversation


def test_an_action_for_a_phone_without_conversation_is_a_400(token):
    response = post({"phone": "5511900000000", "action_type": "appointment_created"}, token)
    assert response.status_code == 400 and response.json()["field"] == "phone"


@pytest.mark.parametrize(
    "body,field",
    [
        ({"name": "Sem telefone", "content": "oi"}, "phone"),
        ({"phone": "123", "content": "oi"}, "phone"),
        ({"phone": "5511987654321"}, "content"),
        ({"phone": "5511987654321", "content": 5}, "content"),
        ({"phone": "5511987654321", "content": "oi", "sender_type": "robot"}, "sender_type"),
        ({"phone": "5511987654321", "content": "oi", "timestamp": "ontem"}, "timestamp"),
        ({"phone": "5511987654321", "content": "oi", "extra": True}, "extra"),
        ({"phone": "5511987654321", "action_type": "Not Valid"}, "action_type"),
    ],
)
def test_bad_bodies_are_400s_naming_the_field(token, body, field):
    response = post(body, token)
    assert response.status_code == 400 and response.json()["field"] == field
    assert not Message.objects.exists()


def test_malformed_json_is_a_400(token):
    response = APIClient().post(
        "/webhooks/n8n/aurora/", "{oops", content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}"
    )
    assert response.status_code == 400 and response.json()["field"] == "body"


@pytest.mark.parametrize("case", ["missing", "wrong", "revoked", "other_clinic"])
def test_the_token_must_be_the_clinics_and_live(token, clinic, other_clinic, case):
    if case == "revoked":
        revoke_integration_token(token=IntegrationToken.objects.get())
    presented = {"missing": None, "wrong": "tmk_nope", "revoked": token, "other_clinic": token}[case]
    response = post(MESSAGE, presented, slug="boreal" if case == "other_clinic" else "aurora")
    assert response.status_code == 401 and response["WWW-Authenticate"].startswith("Bearer")
    assert not Message.objects.exists()


def test_use_is_recorded_on_the_token(token):
    post(MESSAGE, token)
    assert IntegrationToken.objects.get().last_used_at is not None


def test_the_command_prints_a_working_token_once(clinic, capsys):
    call_command("create_integration_token", "aurora", "--name", "n8n produção")
    raw = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("tmk_"))
    stored = IntegrationToken.objects.get()
    assert stored.token_hash == IntegrationToken.hash_token(raw) and raw not in stored.token_hash
    assert post(MESSAGE, raw).status_code == 201


def test_the_command_names_the_clinics_when_the_slug_is_wrong(clinic):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="aurora"):
        call_command("create_integration_token", "nao-existe")


def test_n8n_and_whatsapp_messages_of_one_patient_share_the_conversation(token, clinic):
    post(MESSAGE, token)
    receive_inbound_message(clinic=clinic, phone="5511987654321", content="pelo WhatsApp", external_id="wamid.X")
    assert Message.objects.values("conversation").distinct().count() == 1
