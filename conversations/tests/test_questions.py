"""Questions with reply buttons or a list (WhatsApp's `interactive` message): staff ask through the API and
the worker sends them exactly as Meta documents them (Meta mocked at the HTTP boundary, the real client
running); Meta's rules are checked before anything is stored (a 400 naming the field); the patient's tap
(Meta's documented `button_reply`) shows as the answer to the question; the n8n assistant's questions show
their options too."""

import json

import pytest

from conversations.actions.inbound import receive_inbound_message
from conversations.models import Message
from conversations.tests.test_delivery import PNID, accepted, graph, run_worker  # noqa: F401
from conversations.tests.test_phones import n8n  # noqa: F401 (the fixture)

pytestmark = pytest.mark.django_db(transaction=True)
PHONE = "5511987654321"


@pytest.fixture
def conversation(clinic, whatsapp_channel):
    return receive_inbound_message(
        clinic=clinic, phone=PHONE, contact_name="Maria Souza", content="Oi", external_id="wamid.HI"
    ).conversation


def ask(api, conversation, **body):
    return api.post(
        f"/api/conversations/{conversation.pk}/messages/", {"content": "Confirma a consulta?"} | body, format="json"
    )


def test_reply_buttons_go_out_as_whatsapps_interactive_and_the_tap_answers_the_question(
    jwt_client,
    member,
    conversation,
    graph,  # noqa: F811
    whatsapp_post,
    client,
):
    route = graph.post(f"/{PNID}/messages").mock(return_value=accepted("wamid.QUESTION"))
    response = ask(jwt_client(member), conversation, buttons=["Confirmar", "Remarcar", "Cancelar"])
    assert response.status_code == 201, response.content
    run_worker()
    sent = json.loads(route.calls.last.request.content)
    assert sent["type"] == "interactive"
    assert sent["interactive"] == {
        "type": "button",
        "body": {"text": "Confirma a consulta?"},
        "action": {
            "buttons": [
                {"type": "reply", "reply": {"id": "b1", "title": "Confirmar"}},
                {"type": "reply", "reply": {"id": "b2", "title": "Remarcar"}},
                {"type": "reply", "reply": {"id": "b3", "title": "Cancelar"}},
            ]
        },
    }
    question = Message.objects.get(pk=response.json()["id"])
    assert whatsapp_post("interactive_button").status_code == 200  # Meta's documented tap, in context
    tap = Message.objects.get(external_id="wamid.INTERACTIVE01")
    assert tap.content == "Confirmar consulta" and tap.metadata["reply_to_message_id"] == question.pk
    client.force_login(member)
    page = client.get(f"/inbox/{conversation.pk}/").text
    asked = page.split(f'id="m{question.pk}"')[1].split("</article>")[0]
    assert 'class="question-options"' in asked and "<li>Remarcar</li>" in asked
    answer = page.split(f'id="m{tap.pk}"')[1].split("</article>")[0]
    assert f'data-quote="{question.pk}"' in answer and "Confirma a consulta?" in answer


def test_a_list_goes_out_with_its_button_and_rows(jwt_client, member, conversation, graph):  # noqa: F811
    route = graph.post(f"/{PNID}/messages").mock(return_value=accepted("wamid.LIST"))
    options = [{"title": f"{h}h", "description": "Dra. Helena"} for h in range(8, 12)] + [{"title": "Outro horário"}]
    response = ask(jwt_client(member), conversation, list={"button": "Horários", "options": options})
    assert response.status_code == 201, response.content
    run_worker()
    interactive = json.loads(route.calls.last.request.content)["interactive"]
    assert interactive["type"] == "list" and interactive["action"]["button"] == "Horários"
    rows = interactive["action"]["sections"][0]["rows"]
    assert rows[0] == {"id": "o1", "title": "8h", "description": "Dra. Helena"}
    assert rows[-1] == {"id": "o5", "title": "Outro horário"} and len(rows) == 5


@pytest.mark.parametrize(
    "body,field",
    [
        ({"buttons": ["A", "B", "C", "D"]}, "buttons"),
        ({"buttons": ["Um botão longo demais aqui"]}, "buttons"),
        ({"buttons": ["Sim", "sim"]}, "buttons"),
        ({"buttons": []}, "buttons"),
        ({"buttons": ["Sim"], "content": ""}, "content"),
        ({"buttons": ["Sim"], "content": "x" * 1025}, "content"),
        ({"list": {"options": [{"title": str(n)} for n in range(11)]}}, "list.options"),
        ({"list": {"options": [{"title": "Um título bem longo demais!"}]}}, "list.options"),
        ({"list": {"button": "Um botão longo demais aqui", "options": ["A"]}}, "list.button"),
        ({"list": {"options": ["A"], "sections": []}}, "list.sections"),
        ({"list": {"options": ["A"]}, "buttons": ["B"]}, "list"),
        ({"buttons": ["Sim"], "template": "lembrete_consulta", "content": ""}, "buttons"),
        ({"buttons": "Sim"}, "buttons"),
        ({"buttons": ["Si\u0000m"]}, "buttons.0"),
        ({"list": {"options": ["a\u0000"]}}, "list"),
        ({"list": {"button": "b\u0000", "options": ["a"]}}, "list"),
        ({"list": {"options": [{"title": "a", "description": "d\u0000"}]}}, "list"),
    ],
)
def test_what_whatsapp_would_refuse_is_a_400_naming_the_field_and_nothing_is_stored(
    jwt_client, member, conversation, body, field
):
    before = Message.objects.count()
    response = ask(jwt_client(member), conversation, **body)
    assert response.status_code == 400 and response.json()["field"] == field, response.content
    assert Message.objects.count() == before


def test_the_assistants_question_through_n8n_shows_its_options(n8n, clinic, member, client):  # noqa: F811
    response = n8n(
        {
            "phone": "+55 11 98765-4321",
            "sender_type": "ai",
            "content": "Quer confirmar?",
            "buttons": ["Sim", "Não"],
            "external_id": "wamid.AIQ",
        }
    )
    assert response.status_code == 201, response.content
    message = Message.objects.get(pk=response.json()["message_id"])
    assert message.metadata["question"] == {"buttons": ["Sim", "Não"]}
    refused = n8n({"phone": "+55 11 98765-4321", "content": "Quer?", "buttons": ["Sim"] * 4, "sender_type": "ai"})
    assert refused.status_code == 400 and refused.json()["field"] == "buttons"
    from_patient = n8n({"phone": "+55 11 98765-4321", "content": "Oi", "buttons": ["Sim"]})
    assert from_patient.status_code == 400 and from_patient.json()["field"] == "buttons"


def test_a_quick_reply_carries_reply_buttons_checked_by_whatsapps_rules(jwt_client, clinic, make_member):
    from conversations.models import Role

    admin = jwt_client(make_member(clinic, Role.ADMIN))
    made = admin.post(
        "/api/quick-replies/",
        {"shortcut": "confirmar", "content": "Confirma sua consulta?", "buttons": ["Confirmar", "Remarcar"]},
        format="json",
    )
    assert made.status_code == 201 and made.json()["buttons"] == ["Confirmar", "Remarcar"], made.content
    assert admin.get("/api/quick-replies/").json()[0]["buttons"] == ["Confirmar", "Remarcar"]
    kept = admin.patch(f"/api/quick-replies/{made.json()['id']}/", {"content": "Confirma?"}, format="json")
    assert kept.json()["buttons"] == ["Confirmar", "Remarcar"], "a change of text keeps the buttons"
    refused = admin.post(
        "/api/quick-replies/", {"shortcut": "x", "content": "?", "buttons": ["A", "B", "C", "D"]}, format="json"
    )
    assert refused.status_code == 400 and refused.json()["field"] == "buttons"
