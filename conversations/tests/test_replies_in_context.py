"""Replies in context (WhatsApp's `context`): staff quote a message of the conversation through the API, the
worker sends `context.message_id` with the quoted message's WhatsApp id (Meta mocked at the HTTP boundary,
the real client running), the timeline draws the quote above the reply — a patient's quoted reply the same
way — and a message WhatsApp does not know cannot be quoted."""

import json

import pytest

from conversations.actions.inbound import receive_inbound_message
from conversations.models import Message
from conversations.tests.test_delivery import PNID, accepted, graph, reloaded, run_worker  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)
PHONE = "5511987654321"


@pytest.fixture
def asked(clinic, whatsapp_channel) -> Message:
    return receive_inbound_message(
        clinic=clinic, phone=PHONE, contact_name="Maria Souza", content="Posso levar meu filho?", external_id="wamid.Q1"
    ).message


def test_a_quoted_reply_goes_out_with_the_quoted_messages_whatsapp_id(jwt_client, member, asked, graph):  # noqa: F811
    route = graph.post(f"/{PNID}/messages").mock(return_value=accepted("wamid.R1"))
    response = jwt_client(member).post(
        f"/api/conversations/{asked.conversation_id}/messages/",
        {"content": "Pode sim!", "reply_to": asked.pk, "client_id": "3f1c9a52-8e0b-4d7e-9a41-2b6f0c8d1e55"},
        format="json",
    )
    assert response.status_code == 201, response.content
    run_worker()
    sent = json.loads(route.calls.last.request.content)
    assert sent["context"] == {"message_id": "wamid.Q1"}
    assert sent["type"] == "text" and sent["text"]["body"] == "Pode sim!"
    reply = reloaded(Message.objects.get(pk=response.json()["id"]))
    assert reply.status == "sent" and reply.metadata["reply_to_message_id"] == asked.pk


def test_the_timeline_shows_the_quote_above_the_reply_and_links_the_original(client, member, asked, graph):  # noqa: F811
    graph.post(f"/{PNID}/messages").mock(return_value=accepted("wamid.R1"))
    from conversations.actions.messages import send_outbound_message

    reply = send_outbound_message(
        conversation=asked.conversation, sender=member, content="Pode sim!", reply_to=asked.pk
    ).message
    # The patient quotes the clinic's answer back, once WhatsApp knows it.
    run_worker()
    patient = receive_inbound_message(
        clinic=asked.clinic,
        phone=PHONE,
        content="Obrigada!",
        external_id="wamid.Q2",
        metadata={"context": {"from": "15550000000", "id": "wamid.R1"}},
    ).message
    client.force_login(member)
    page = client.get(f"/inbox/{asked.conversation_id}/").text
    ours = page.split(f'id="m{reply.pk}"')[1].split("</article>")[0]
    assert f'data-quote="{asked.pk}"' in ours and "Maria Souza" in ours and "Posso levar meu filho?" in ours
    theirs = page.split(f'id="m{patient.pk}"')[1].split("</article>")[0]
    assert f'data-quote="{reply.pk}"' in theirs and "Pode sim!" in theirs
    assert f'data-reply-to="{asked.pk}"' in page, "a message WhatsApp knows can be quoted"


@pytest.mark.parametrize("case", ["unknown", "another conversation", "not sent yet", "wrong type", "with a template"])
def test_what_cannot_be_quoted_is_a_400_naming_reply_to_and_stores_nothing(jwt_client, clinic, member, asked, case):
    other = receive_inbound_message(clinic=clinic, phone="5511955550001", content="Oi", external_id="wamid.O1")
    pending = Message.objects.create(
        clinic=clinic,
        conversation=asked.conversation,
        direction="outbound",
        sender_type="professional",
        sender=member,
        content="ainda não saiu",
        status="pending",
    )
    reply_to = {
        "unknown": 999_999,
        "another conversation": other.message.pk,
        "not sent yet": pending.pk,
        "wrong type": "primeira",
        "with a template": asked.pk,
    }[case]
    body = {"content": "Pode sim!", "reply_to": reply_to}
    if case == "with a template":
        body = {"template": "lembrete_consulta", "reply_to": reply_to}
    before = Message.objects.count()
    response = jwt_client(member).post(f"/api/conversations/{asked.conversation_id}/messages/", body, format="json")
    assert response.status_code == 400 and response.json()["field"] == "reply_to", response.content
    assert Message.objects.count() == before
