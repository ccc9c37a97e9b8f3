"""Internal notes through the API: written, shown in the timeline as notes, told live to the clinic, never
sent to the patient, never the patient's unread or last message; @name tells a colleague."""

import pytest
from django.core.management import call_command

from conversations.actions.inbound import receive_inbound_message
from conversations.actions.notes import mentioned_in
from conversations.models import AuditEvent, DeliveryAttempt, Message, Note
from conversations.tests.test_delivery import PNID, accepted
from realtime.models import Event


@pytest.fixture
def conversation(clinic):
    return receive_inbound_message(
        clinic=clinic, phone="5511987654321", contact_name="Maria", content="Oi"
    ).conversation


@pytest.fixture
def bruno(clinic, make_member):
    return make_member(clinic, first_name="Bruno", last_name="Lima", username="bruno.lima")


def notes_url(conversation) -> str:
    return f"/api/conversations/{conversation.pk}/notes/"


def test_a_note_is_stored_shown_in_the_timeline_and_told_live(jwt_client, member, bruno, conversation):
    api = jwt_client(member)
    response = api.post(notes_url(conversation), {"content": "Confirmar convênio, @bruno.lima"}, format="json")
    assert response.status_code == 201, response.content
    note = response.json()
    assert note["kind"] == "note" and note["content"] == "Confirmar convênio, @bruno.lima"
    assert note["author"] == {"id": member.pk, "name": "Júlia Carvalho"}
    assert note["mentions"] == [{"id": bruno.pk, "name": "Bruno Lima"}]

    detail = api.get(f"/api/conversations/{conversation.pk}/").json()
    assert [n["id"] for n in detail["notes"]] == [note["id"]] and detail["notes"][0]["kind"] == "note"
    assert {m["kind"] for m in detail["messages"]} == {"message"}
    assert [m["content"] for m in detail["messages"]] == ["Oi"], "a note is not a message"
    assert api.get(notes_url(conversation)).json() == {"results": [note], "has_more": False}

    event = Event.objects.get(type="note:new")
    assert event.conversation_id == conversation.pk and event.data["note"] == note
    assert AuditEvent.objects.filter(action="conversation.note", actor=member).count() == 1


@pytest.mark.django_db(transaction=True)  # the real worker runs what was committed
def test_a_note_goes_to_no_provider_and_is_not_the_patients_unread_or_last_message(
    jwt_client, member, bruno, conversation, whatsapp_channel, settings
):
    import respx

    with respx.mock(assert_all_called=False) as router:
        send = router.post(f"{settings.WHATSAPP_GRAPH_URL}/{PNID}/messages").mock(return_value=accepted())
        api = jwt_client(bruno)
        before = api.get("/api/conversations/").json()["results"][0]
        assert (
            jwt_client(member).post(notes_url(conversation), {"content": "Paciente ansiosa"}, format="json").status_code
            == 201
        )
        call_command("db_worker", "--batch", "--no-reload", "--no-startup-delay", "--queue-name", "*", verbosity=0)
        assert not send.called
    assert Message.objects.count() == 1 and not DeliveryAttempt.objects.exists()
    after = api.get("/api/conversations/").json()["results"][0]
    assert (
        after["last_message"]
        == before["last_message"]
        == {
            "content": "Oi",
            "message_type": "text",
            "direction": "inbound",
            "sender_type": "patient",
            "sender_id": None,
        }
    )
    assert after["unread_count"] == before["unread_count"] == 1
    assert after["last_message_at"] == before["last_message_at"]


@pytest.mark.parametrize(
    "body,field",
    [
        ({"content": "   "}, "content"),
        ({"content": "x" * 4097}, "content"),
        ({"content": 5}, "content"),
        ({}, "content"),
        ({"content": "ok", "to": "patient"}, "to"),
    ],
)
def test_bad_notes_are_refused_and_change_nothing(jwt_client, member, conversation, body, field):
    response = jwt_client(member).post(notes_url(conversation), body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()["errors"]
    assert not Note.objects.exists() and not Event.objects.filter(type="note:new").exists()


def test_mentions_name_colleagues_of_the_clinic_only(clinic, other_clinic, make_member, member, bruno):
    make_member(clinic, first_name="Ana", last_name="Silva")
    make_member(clinic, first_name="Ana", last_name="Costa")
    stranger = make_member(other_clinic, first_name="Carla", username="carla")
    named = mentioned_in("@julia e @BRUNO.LIMA, veja; @ana? @carla; email bruno@bruno.lima", clinic.pk)
    assert named == [member, bruno], "first name without accents, user name in any case; Ana is two people"
    assert stranger not in mentioned_in("@carla", clinic.pk)
    assert mentioned_in("sem menção", clinic.pk) == []


def test_older_notes_page_back(jwt_client, member, conversation):
    api = jwt_client(member)
    ids = [api.post(notes_url(conversation), {"content": f"nota {n}"}, format="json").json()["id"] for n in range(5)]
    first = api.get(notes_url(conversation), {"limit": 2}).json()
    assert [n["id"] for n in first["results"]] == ids[3:] and first["has_more"]
    older = api.get(notes_url(conversation), {"limit": 2, "before": ids[3]}).json()
    assert [n["id"] for n in older["results"]] == ids[1:3]
    assert api.get(notes_url(conversation), {"before": 999999}).status_code == 400


@pytest.mark.django_db(transaction=True)  # the cache's versions move on commit
def test_a_cached_detail_shows_a_new_note_at_once(jwt_client, member, conversation):
    api = jwt_client(member)
    assert api.get(f"/api/conversations/{conversation.pk}/").json()["notes"] == []  # cached now
    note = api.post(notes_url(conversation), {"content": "Retornar às 15h"}, format="json").json()
    assert api.get(f"/api/conversations/{conversation.pk}/").json()["notes"] == [note]
