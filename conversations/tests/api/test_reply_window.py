"""WhatsApp's 24-hour window: free text only while the patient wrote within it (refused before sending
after it, 409), and the clinic's approved templates — listed from the Graph API or the simulator, their
variables filled — sent through the provider instead."""

import json
from datetime import timedelta

import httpx
import pytest
from django.core.management import call_command
from django.utils import timezone

from conversations.actions.inbound import receive_inbound_message
from conversations.models import DeliveryAttempt, Message
from conversations.tests.test_delivery import PNID, Graph, accepted
from realtime.models import Event

WABA = "102290129340398"


@pytest.fixture
def conversation(clinic):
    return receive_inbound_message(
        clinic=clinic, phone="5511987654321", contact_name="Maria Souza", content="Oi"
    ).conversation


def age(conversation, hours: float) -> None:
    """The patient's messages were written `hours` ago."""
    Message.objects.filter(conversation=conversation).update(created_at=timezone.now() - timedelta(hours=hours))


def send_text(api, conversation, text="Bom dia!"):
    return api.post(f"/api/conversations/{conversation.pk}/messages/", {"content": text}, format="json")


def send_template(api, conversation, name="lembrete_consulta", variables=None, **extra):
    body = {
        "template": name,
        "variables": variables if variables is not None else {"1": "Maria", "2": "10/12", "3": "14h"},
    }
    return api.post(f"/api/conversations/{conversation.pk}/messages/", body | extra, format="json")


def test_the_detail_says_when_the_window_closes(jwt_client, member, conversation):
    latest = Message.objects.get()
    detail = jwt_client(member).get(f"/api/conversations/{conversation.pk}/").json()
    assert detail["reply_window_ends_at"] == (latest.created_at + timedelta(hours=24)).isoformat().replace(
        "+00:00", "Z"
    )


@pytest.mark.usefixtures("simulated_number")
def test_free_text_is_refused_before_sending_once_the_window_closed(jwt_client, member, conversation):
    age(conversation, 25)
    api = jwt_client(member)
    events_before = Event.objects.count()
    refused = send_text(api, conversation)
    assert refused.status_code == 409, refused.content
    assert refused.json()["code"] == "outside_reply_window" and "24-hour window" in refused.json()["detail"]
    assert Message.objects.count() == 1 and Event.objects.count() == events_before, "nothing stored, nothing told"

    receive_inbound_message(clinic=conversation.clinic, phone="5511987654321", content="Ainda tem horário?")
    assert send_text(api, conversation).status_code == 201, "the patient wrote: open again"


@pytest.mark.usefixtures("simulated_number")
def test_within_the_window_free_text_goes(jwt_client, member, conversation):
    age(conversation, 23)
    assert send_text(jwt_client(member), conversation).status_code == 201


@pytest.mark.usefixtures("simulated_number")
def test_the_simulators_templates_are_listed_and_one_goes_after_the_window(jwt_client, member, conversation):
    age(conversation, 48)
    api = jwt_client(member)
    listed = api.get("/api/templates/").json()
    assert listed["source"] == "simulator"
    reminder = next(t for t in listed["results"] if t["name"] == "lembrete_consulta")
    assert reminder["variables"] == ["1", "2", "3"] and "{{2}}" in reminder["body"]

    sent = send_template(api, conversation)
    assert sent.status_code == 201, sent.content
    message = sent.json()
    assert message["message_type"] == "template" and message["status"] == "pending"
    assert message["content"] == "Olá, Maria! Lembramos da sua consulta em 10/12 às 14h. Responda SIM para confirmar."
    assert message["metadata"]["template"] == {
        "name": "lembrete_consulta",
        "language": "pt_BR",
        "variables": {"1": "Maria", "2": "10/12", "3": "14h"},
    }


@pytest.mark.parametrize(
    "variables,field_says",
    [({"1": "Maria", "2": "10/12"}, "3"), ({"1": "Maria", "2": " ", "3": "14h"}, "2"), ({}, "1, 2, 3")],
)
def test_an_unfilled_variable_stops_the_send_and_names_it(jwt_client, member, conversation, variables, field_says):
    response = send_template(jwt_client(member), conversation, variables=variables)
    assert response.status_code == 400 and response.json()["field"] == "variables"
    assert f"Fill the template's variables: {field_says}" in response.json()["detail"]
    assert Message.objects.count() == 1


@pytest.mark.parametrize(
    "body,field",
    [
        ({"template": "nao_existe", "variables": {}}, "template"),
        ({"template": "lembrete_consulta", "content": "e texto"}, "template"),
        ({"template": "retomar_atendimento", "variables": {"1": "Maria", "9": "x"}}, "variables"),
        ({"template": "retomar_atendimento", "variables": {"1": 5}}, "variables"),
    ],
)
def test_bad_template_sends_are_refused(jwt_client, member, conversation, body, field):
    response = jwt_client(member).post(f"/api/conversations/{conversation.pk}/messages/", body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["field"].split(".")[0] == field and Message.objects.count() == 1


@pytest.fixture
def graph(settings, whatsapp_channel):
    import respx

    whatsapp_channel.business_account_id = WABA
    whatsapp_channel.save(update_fields=["business_account_id"])
    settings.DELIVERY_RETRY_BASE_SECONDS = 0
    with respx.mock(assert_all_called=False) as router:
        yield Graph(router, settings.WHATSAPP_GRAPH_URL)


TEMPLATES = {
    "data": [
        {
            "name": "confirmacao_consulta",
            "language": "pt_BR",
            "status": "APPROVED",
            "category": "UTILITY",
            "components": [
                {"type": "HEADER", "format": "TEXT", "text": "Clínica"},
                {"type": "BODY", "text": "Olá {{1}}, sua consulta é {{2}}."},
            ],
            "id": "1",
        },
        {"name": "promo", "language": "pt_BR", "status": "REJECTED", "category": "MARKETING", "components": []},
    ],
    "paging": {"cursors": {"before": "a", "after": "b"}},
}


@pytest.mark.django_db(transaction=True)  # the real worker delivers what was committed
def test_a_real_channels_approved_templates_are_listed_and_sent_through_the_graph_api(
    jwt_client, member, conversation, graph
):
    listing = graph.get(f"/{WABA}/message_templates").mock(return_value=httpx.Response(200, json=TEMPLATES))
    send = graph.post(f"/{PNID}/messages").mock(return_value=accepted("wamid.TPL1"))
    age(conversation, 30)
    api = jwt_client(member)
    listed = api.get("/api/templates/").json()
    assert listed["source"] == "whatsapp" and [t["name"] for t in listed["results"]] == ["confirmacao_consulta"]
    assert listed["results"][0]["body"] == "Olá {{1}}, sua consulta é {{2}}."
    api.get("/api/templates/")
    assert listing.call_count == 1, "kept a few minutes, not asked again"

    assert send_text(api, conversation).status_code == 409
    sent = send_template(api, conversation, name="confirmacao_consulta", variables={"1": "Maria", "2": "amanhã"})
    assert sent.status_code == 201, sent.content
    call_command("db_worker", "--batch", "--no-reload", "--no-startup-delay", "--queue-name", "*", verbosity=0)
    assert send.call_count == 1
    body = json.loads(send.calls.last.request.content)
    assert body["type"] == "template" and body["to"] == "5511987654321"
    assert body["template"] == {
        "name": "confirmacao_consulta",
        "language": {"code": "pt_BR"},
        "components": [
            {"type": "body", "parameters": [{"type": "text", "text": "Maria"}, {"type": "text", "text": "amanhã"}]}
        ],
    }
    assert Message.objects.get(pk=sent.json()["id"]).external_id == "wamid.TPL1"
    assert DeliveryAttempt.objects.filter(message_id=sent.json()["id"], outcome="sent").exists()


def test_templates_that_whatsapp_cannot_list_are_a_clear_503(jwt_client, member, graph, whatsapp_channel):
    graph.get(f"/{WABA}/message_templates").mock(return_value=httpx.Response(500, json={"error": {"code": 2}}))
    failed = jwt_client(member).get("/api/templates/")
    assert failed.status_code == 503 and failed.json()["code"] == "templates_unavailable"
    whatsapp_channel.business_account_id = ""
    whatsapp_channel.save(update_fields=["business_account_id"])
    missing = jwt_client(member).get("/api/templates/")
    assert missing.status_code == 503 and "Business Account id" in missing.json()["detail"]
