"""One patient, one history: Brazil's mobiles with and without the ninth digit are one number, wherever a
phone is looked up (the WhatsApp and n8n webhooks, the API's and the inbox's search, the admin); landlines
and other countries are as written; replies go to the number as WhatsApp knows it."""

import json
import threading
import time

import pytest
from django.db import connection
from rest_framework.test import APIClient

from conftest import whatsapp_payload
from conversations.actions.integrations import create_integration_token
from conversations.models import Contact, Conversation, Message
from conversations.phones import canonical_phone, format_phone, search_forms

WITH_NINE = "5511987654321"  # how people, n8n and the clinic's records write it
WITHOUT_NINE = "551187654321"  # how WhatsApp's wa_id has it for many mobiles older than the ninth digit


@pytest.mark.parametrize(
    "given,canonical",
    [
        (WITHOUT_NINE, WITH_NINE),  # a mobile of São Paulo without its 9
        (WITH_NINE, WITH_NINE),
        ("552167891234", "5521967891234"),  # Rio, starting with 6
        ("559171234567", "5591971234567"),  # Belém, starting with 7
        ("551132654321", "551132654321"),  # a landline (2 to 5) never gets a 9
        ("551152654321", "551152654321"),
        ("552087654321", "552087654321"),  # 20 is no area code
        ("551087654321", "551087654321"),  # nor 10
        ("15551234567", "15551234567"),  # other countries as written
        ("351912345678", "351912345678"),  # Portugal: 12 digits, starts like a mobile, not Brazil
        ("5511387654321", "5511387654321"),  # 13 digits but not a mobile's form: left alone
    ],
)
def test_the_canonical_form_of_a_number(given, canonical):
    assert canonical_phone(given) == canonical


def test_a_number_is_shown_in_its_canonical_form():
    assert format_phone(canonical_phone(WITHOUT_NINE)) == "+55 11 98765-4321"
    assert search_forms("1187654321") == ["1187654321", "11987654321"]


@pytest.fixture
def n8n(clinic, simulated_number):
    token = create_integration_token(clinic=clinic, name="n8n")[1]
    client = APIClient(HTTP_AUTHORIZATION=f"Bearer {token}")
    return lambda body: client.post(f"/webhooks/n8n/{clinic.slug}/", body, format="json")


def patient_writes_from(phone: str, text: str, wamid: str) -> dict:
    payload = whatsapp_payload("text")
    value = payload["entry"][0]["changes"][0]["value"]
    value["contacts"] = [{"profile": {"name": "Maria Souza"}, "wa_id": phone}]
    value["messages"][0] |= {"from": phone, "id": wamid, "text": {"body": text}, "timestamp": str(int(time.time()))}
    return payload


@pytest.mark.parametrize("order", ["the reminder first", "the patient first"])
def test_an_n8n_reminder_to_13_digits_and_the_answer_from_a_12_digit_wa_id_are_one_conversation(
    n8n, whatsapp_post, whatsapp_channel, order
):
    reminder = {"phone": "+55 11 98765-4321", "content": "Lembrete: consulta amanhã", "sender_type": "ai"}
    answer = patient_writes_from(WITHOUT_NINE, "Confirmo!", "wamid.ANSWER")
    if order == "the reminder first":
        assert n8n(reminder).status_code == 201
        assert whatsapp_post(answer).status_code == 200
    else:
        assert whatsapp_post(answer).status_code == 200
        assert n8n(reminder).status_code == 201
    patient = Contact.objects.get()
    assert (patient.phone, patient.whatsapp_id, patient.phone_display) == (WITH_NINE, WITHOUT_NINE, "+55 11 98765-4321")
    conversation = Conversation.objects.get()
    assert sorted(conversation.messages.values_list("content", flat=True)) == ["Confirmo!", "Lembrete: consulta amanhã"]


def test_a_landline_and_the_mobile_that_differs_from_it_by_a_9_stay_two_patients(whatsapp_post, whatsapp_channel):
    assert (
        whatsapp_post(patient_writes_from("551132654321", "Da recepção do hospital", "wamid.LAND")).status_code == 200
    )
    assert whatsapp_post(patient_writes_from("5511932654321", "Do celular", "wamid.MOBILE")).status_code == 200
    assert sorted(Contact.objects.values_list("phone", flat=True)) == ["551132654321", "5511932654321"]
    assert Conversation.objects.count() == 2


@pytest.mark.django_db(transaction=True)  # the delivery task is committed with its message
def test_a_reply_goes_to_the_number_as_whatsapp_knows_it(n8n, whatsapp_post, whatsapp_channel, member, jwt_client):
    """The clinic knew the patient by the 13-digit number (an n8n reminder); WhatsApp knows them by its
    12-digit wa_id: replies are addressed to WhatsApp's form."""
    import httpx
    import respx
    from django.conf import settings
    from django.core.management import call_command

    assert n8n({"phone": "+55 11 98765-4321", "content": "Lembrete", "sender_type": "ai"}).status_code == 201
    assert whatsapp_post(patient_writes_from(WITHOUT_NINE, "Oi", "wamid.IN")).status_code == 200
    conversation = Conversation.objects.get()
    assert conversation.contact.phone == WITH_NINE
    with respx.mock as graph:
        sent = graph.post(f"{settings.WHATSAPP_GRAPH_URL}/{whatsapp_channel.phone_number_id}/messages").mock(
            return_value=httpx.Response(200, json={"messages": [{"id": "wamid.OUT"}]})
        )
        reply = jwt_client(member).post(
            f"/api/conversations/{conversation.pk}/messages/", {"content": "Olá!"}, format="json"
        )
        assert reply.status_code == 201
        call_command("db_worker", "--batch", "--no-reload", "--no-startup-delay", "--queue-name", "*", verbosity=0)
    assert json.loads(sent.calls.last.request.content)["to"] == WITHOUT_NINE


@pytest.mark.parametrize("typed", ["+55 11 98765-4321", "551187654321", "(11) 8765-4321", "11987654321"])
def test_either_form_finds_the_patient_in_the_api_the_inbox_and_the_admin(
    typed, whatsapp_post, whatsapp_channel, member, jwt_client, client, django_user_model
):
    assert whatsapp_post(patient_writes_from(WITHOUT_NINE, "Oi", "wamid.IN")).status_code == 200
    patient = Contact.objects.get()
    found = jwt_client(member).get("/api/contacts/", {"q": typed}).json()["results"]
    assert [c["id"] for c in found] == [patient.pk]
    listed = jwt_client(member).get("/api/conversations/", {"q": typed}).json()["results"]
    assert [c["contact"]["id"] for c in listed] == [patient.pk]
    support = django_user_model.objects.create_superuser("suporte", password="senha-de-suporte-123")
    client.force_login(support)
    page = client.get("/admin/conversations/contact/", {"q": typed})
    assert f"/admin/conversations/contact/{patient.pk}/change/" in page.text


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_first_messages_in_both_forms_at_once_make_one_patient(whatsapp_channel):
    """Two deliveries racing for a patient the clinic never saw, one in each form: the database's one
    canonical number per clinic decides, and both messages land in one conversation."""
    from conversations.webhooks.whatsapp import receive_notification, signature_of

    bodies = [
        json.dumps(patient_writes_from(phone, f"de {phone}", f"wamid.RACE-{phone}")).encode()
        for phone in (WITH_NINE, WITHOUT_NINE)
    ]
    start, answers = threading.Barrier(2), []

    def deliver(body: bytes) -> None:
        try:
            start.wait(5)
            answers.append(receive_notification(body, signature_of(body, whatsapp_channel.app_secret))[0])
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver, args=(body,)) for body in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert answers == [200, 200]
    assert Contact.objects.count() == 1 and Conversation.objects.count() == 1
    assert Message.objects.count() == 2


def test_an_n8n_action_to_the_other_form_finds_the_patients_conversation(n8n, whatsapp_post, whatsapp_channel):
    assert whatsapp_post(patient_writes_from(WITH_NINE, "Oi", "wamid.IN")).status_code == 200
    action = {"phone": WITHOUT_NINE, "action_type": "appointment_created"}
    assert n8n(action).status_code == 201
    assert Conversation.objects.get().actions.count() == 1 and Contact.objects.count() == 1


def test_a_number_change_reported_in_the_other_form_moves_the_same_patient(whatsapp_post, whatsapp_channel):
    """WhatsApp's notice names the old number as its wa_id (without the 9) and the new one: the patient the
    clinic knows by the canonical form is the one that changes, and replies follow the new wa_id."""
    assert whatsapp_post(patient_writes_from(WITH_NINE, "Oi", "wamid.IN")).status_code == 200
    notice = whatsapp_payload("system_changed_number")
    message = notice["entry"][0]["changes"][0]["value"]["messages"][0]
    message["from"] = WITHOUT_NINE
    message["system"] |= {"wa_id": "551182345678", "body": "Maria changed from 551187654321 to 551182345678"}
    assert whatsapp_post(notice).status_code == 200
    patient = Contact.objects.get()
    assert (patient.phone, patient.whatsapp_id) == ("5511982345678", "551182345678")
    assert Conversation.objects.count() == 1


def test_support_correcting_a_phone_stops_replies_to_the_old_number(
    whatsapp_post, whatsapp_channel, client, django_user_model
):
    """WhatsApp's form of the old number must not keep receiving the patient's replies once support fixed it;
    a number typed in WhatsApp's form is stored canonical."""
    assert whatsapp_post(patient_writes_from("5511987654320", "Oi", "wamid.IN")).status_code == 200
    patient = Contact.objects.get()
    support = django_user_model.objects.create_superuser("suporte", password="senha-de-suporte-123")
    client.force_login(support)
    form = {
        "clinic": patient.clinic_id,
        "name": "Maria",
        "phone": "551187654321",
        "email": "",
        "notes": "",
        "status": "active",
    }
    assert client.post(f"/admin/conversations/contact/{patient.pk}/change/", form).status_code == 302
    patient.refresh_from_db()
    assert (patient.phone, patient.whatsapp_id) == (WITH_NINE, ""), "replies go to the corrected number"
    from conversations.providers.whatsapp_cloud import recipient_of

    assert recipient_of(patient) == {"to": WITH_NINE}


def test_a_record_known_only_by_whatsapps_form_is_found_by_the_number_as_shown(
    member, jwt_client, clinic, client, django_user_model
):
    """What the canonical upgrade leaves of a duplicate (its number as its WhatsApp id only) is found typing
    the number with its 9, in the API, the admin's patients and conversations."""
    legacy = Contact.objects.create(clinic=clinic, whatsapp_id=WITHOUT_NINE)
    conversation = Conversation.objects.create(clinic=clinic, contact=legacy)
    found = jwt_client(member).get("/api/contacts/", {"q": "+55 11 98765-4321"}).json()["results"]
    assert [c["id"] for c in found] == [legacy.pk]
    support = django_user_model.objects.create_superuser("suporte", password="senha-de-suporte-123")
    client.force_login(support)
    assert f"/contact/{legacy.pk}/change/" in client.get("/admin/conversations/contact/", {"q": "11 98765-4321"}).text
    listed = client.get("/admin/conversations/conversation/", {"q": "11 98765-4321"}).text
    assert f"/conversation/{conversation.pk}/change/" in listed
