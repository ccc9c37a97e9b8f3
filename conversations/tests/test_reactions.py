"""Reactions both ways. A patient's 👍 (Meta's documented `reaction` notification, through the signed
webhook) goes on the message it reacts to — never a message of its own, never unread — and a removed one goes
away. Staff react to a patient's message through the API and the worker sends WhatsApp's `reaction` type
(Meta mocked at the HTTP boundary, the real client running). Both reach every screen as message:updated."""

import json

import pytest

from conftest import whatsapp_payload
from conversations.actions.inbound import receive_inbound_message
from conversations.actions.messages import send_outbound_message
from conversations.models import Message
from conversations.selectors import unread_counts_for
from conversations.tests.test_delivery import PNID, accepted, graph, run_worker  # noqa: F401
from realtime.models import Event

pytestmark = pytest.mark.django_db(transaction=True)
PHONE = "5511987654321"


@pytest.fixture
def answered(clinic, member, whatsapp_channel, graph):  # noqa: F811
    """The patient asked; the clinic answered and WhatsApp took it (wamid.OUTBOUND1)."""
    graph.post(f"/{PNID}/messages").mock(return_value=accepted("wamid.OUTBOUND1"))
    asked = receive_inbound_message(
        clinic=clinic, phone=PHONE, contact_name="Maria Souza", content="Tem horário amanhã?", external_id="wamid.Q1"
    ).message
    reply = send_outbound_message(conversation=asked.conversation, sender=member, content="Temos às 14h.").message
    run_worker()
    reply.refresh_from_db()
    assert reply.external_id == "wamid.OUTBOUND1"
    return {"asked": asked, "reply": reply}


def reaction(emoji: str, wamid: str, timestamp: int = 1750090702, to: str = "wamid.OUTBOUND1") -> dict:
    payload = whatsapp_payload("reaction")
    message = payload["entry"][0]["changes"][0]["value"]["messages"][0]
    message.update({"id": wamid, "timestamp": str(timestamp), "reaction": {"message_id": to, "emoji": emoji}})
    return payload


def test_a_patients_reaction_shows_on_the_message_it_reacts_to_not_as_a_message(
    whatsapp_post, answered, member, client
):
    before = Message.objects.count()
    unread = unread_counts_for(member, [answered["reply"].conversation_id])
    assert whatsapp_post(reaction("👍", "wamid.R1")).status_code == 200
    reply = Message.objects.get(pk=answered["reply"].pk)
    assert reply.metadata["reactions"]["patient"]["emoji"] == "👍"
    assert Message.objects.count() == before, "never a message of its own"
    assert unread_counts_for(member, [reply.conversation_id]) == unread, "nor an unread one"
    told = Event.objects.filter(type="message:updated").latest("seq")
    assert told.data["message"]["id"] == reply.pk and told.data["message"]["metadata"]["reactions"]["patient"]
    client.force_login(member)
    page = client.get(f"/inbox/{reply.conversation_id}/").text
    bubble = page.split(f'id="m{reply.pk}"')[1].split("</article>")[0]
    assert 'data-reaction="patient"' in bubble and "👍" in bubble

    # Changed, delivered again late (an older one), then taken back.
    assert whatsapp_post(reaction("❤️", "wamid.R2", timestamp=1750090800)).status_code == 200
    assert whatsapp_post(reaction("👍", "wamid.R1")).status_code == 200
    assert Message.objects.get(pk=reply.pk).metadata["reactions"]["patient"]["emoji"] == "❤️"
    assert whatsapp_post(reaction("", "wamid.R3", timestamp=1750090900)).status_code == 200
    assert "reactions" not in Message.objects.get(pk=reply.pk).metadata
    assert Message.objects.count() == before


def test_a_reaction_to_a_message_the_clinic_does_not_have_is_kept_as_before(whatsapp_post, clinic, whatsapp_channel):
    assert whatsapp_post(reaction("👍", "wamid.R9", to="wamid.UNKNOWN")).status_code == 200
    kept = Message.objects.get(external_id="wamid.R9")
    assert kept.content == "👍" and kept.metadata["reaction"]["message_id"] == "wamid.UNKNOWN"


def test_staff_react_and_the_worker_sends_whatsapps_reaction_type(jwt_client, member, answered, graph):  # noqa: F811
    route = graph.post(f"/{PNID}/messages").mock(return_value=accepted("wamid.REACT1"))
    asked = answered["asked"]
    api = jwt_client(member)
    url = f"/api/conversations/{asked.conversation_id}/messages/{asked.pk}/reaction/"
    response = api.post(url, {"emoji": "🙏"}, format="json")
    assert response.status_code == 200 and response.json()["metadata"]["reactions"]["staff"]["emoji"] == "🙏"
    assert Message.objects.filter(conversation_id=asked.conversation_id).count() == 2, "no message of its own"
    run_worker()
    sent = json.loads(route.calls.last.request.content)
    assert sent["type"] == "reaction" and sent["reaction"] == {"message_id": "wamid.Q1", "emoji": "🙏"}
    assert sent["to"] == PHONE
    assert Message.objects.get(pk=asked.pk).metadata["reactions"]["staff"]["status"] == "sent"
    calls = route.call_count
    assert api.post(url, {"emoji": "🙏"}, format="json").status_code == 200  # the same again: nothing to send
    run_worker()
    assert route.call_count == calls
    assert api.post(url, {"emoji": ""}, format="json").status_code == 200
    run_worker()
    assert json.loads(route.calls.last.request.content)["reaction"] == {"message_id": "wamid.Q1", "emoji": ""}
    assert "reactions" not in Message.objects.get(pk=asked.pk).metadata


@pytest.mark.parametrize(
    "case,status,field",
    [
        ("text", 400, "emoji"),
        ("two words", 400, "emoji"),
        ("a number", 400, "emoji"),
        ("too long", 400, "emoji"),
        ("a caret", 400, "emoji"),
        ("four thumbs", 400, "emoji"),
        ("a direction override", 400, "emoji"),
        ("combining marks", 400, "emoji"),
        ("the clinic's own message", 400, "message"),
        ("unknown message", 404, None),
    ],
)
def test_what_cannot_be_a_reaction_is_refused_and_changes_nothing(jwt_client, member, answered, case, status, field):
    asked, reply = answered["asked"], answered["reply"]
    emoji = {
        "text": "ok",
        "two words": "👍 sim",
        "a number": "1",
        "too long": "👍" * 20,
        "a caret": "^",
        "four thumbs": "👍👍👍👍",
        "a direction override": "👍\u202e",
        "combining marks": "👍" + "\u0301" * 3,
    }.get(case, "👍")
    target = {"the clinic's own message": reply.pk, "unknown message": 999_999}.get(case, asked.pk)
    url = f"/api/conversations/{asked.conversation_id}/messages/{target}/reaction/"
    response = jwt_client(member).post(url, {"emoji": emoji}, format="json")
    assert response.status_code == status, response.content
    if field:
        assert response.json()["field"] == field
    assert not Message.objects.filter(metadata__has_key="reactions").exists()


def test_after_the_24_hour_window_a_reaction_is_a_409(jwt_client, member, answered):
    from datetime import timedelta

    from django.utils import timezone

    asked = answered["asked"]
    Message.objects.filter(pk=asked.pk).update(created_at=timezone.now() - timedelta(hours=30))
    url = f"/api/conversations/{asked.conversation_id}/messages/{asked.pk}/reaction/"
    response = jwt_client(member).post(url, {"emoji": "👍"}, format="json")
    assert response.status_code == 409 and "reactions" not in Message.objects.get(pk=asked.pk).metadata


@pytest.mark.parametrize("emoji", ["👍🏽", "❤️", "👨\u200d⚕️", "🇧🇷", "1️⃣"])
def test_one_emoji_however_it_is_made_is_a_reaction(jwt_client, member, answered, emoji):
    asked = answered["asked"]
    url = f"/api/conversations/{asked.conversation_id}/messages/{asked.pk}/reaction/"
    assert jwt_client(member).post(url, {"emoji": emoji}, format="json").status_code == 200


def test_a_reaction_changed_before_its_send_ran_sends_only_the_latest(jwt_client, member, answered, graph):  # noqa: F811
    route = graph.post(f"/{PNID}/messages").mock(return_value=accepted("wamid.REACT2"))
    asked = answered["asked"]
    api = jwt_client(member)
    url = f"/api/conversations/{asked.conversation_id}/messages/{asked.pk}/reaction/"
    calls = route.call_count
    assert api.post(url, {"emoji": "👍"}, format="json").status_code == 200
    assert api.post(url, {"emoji": ""}, format="json").status_code == 200  # taken back before any send
    run_worker()
    sent = [json.loads(call.request.content) for call in route.calls[calls:]]
    assert [s["reaction"]["emoji"] for s in sent] == [""], "the 👍 queued first never reaches WhatsApp"


def test_a_failed_staff_reaction_can_be_sent_again(jwt_client, member, answered, graph):  # noqa: F811
    from conversations.tests.test_delivery import meta_error

    route = graph.post(f"/{PNID}/messages").mock(return_value=meta_error(400, 131051, "Unsupported"))
    asked = answered["asked"]
    api = jwt_client(member)
    url = f"/api/conversations/{asked.conversation_id}/messages/{asked.pk}/reaction/"
    api.post(url, {"emoji": "🙏"}, format="json")
    run_worker()
    assert Message.objects.get(pk=asked.pk).metadata["reactions"]["staff"]["status"] == "failed"
    route.mock(return_value=accepted("wamid.REACT3"))
    assert api.post(url, {"emoji": "🙏"}, format="json").status_code == 200
    run_worker()
    assert Message.objects.get(pk=asked.pk).metadata["reactions"]["staff"]["status"] == "sent"
