"""Labels on conversations (the list filtered by them) and snooze (out of the open list until a time, back
on its own by a scheduled task, or at once when the patient writes), through the API."""

import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from conversations.actions.inbound import receive_inbound_message
from conversations.actions.labels import create_label
from conversations.models import AuditEvent, Conversation, Label
from realtime.models import Event

pytestmark = pytest.mark.django_db(transaction=True)  # the cached list moves on commit, as in production


@pytest.fixture
def maria(clinic):
    return receive_inbound_message(
        clinic=clinic, phone="5511987654321", contact_name="Maria", content="Oi"
    ).conversation


@pytest.fixture
def carlos(clinic):
    return receive_inbound_message(
        clinic=clinic, phone="5511922220002", contact_name="Carlos", content="Oi"
    ).conversation


def ids(api, **query) -> list[int]:
    return [row["id"] for row in api.get("/api/conversations/", query).json()["results"]]


def patch(api, conversation, body):
    return api.patch(f"/api/conversations/{conversation.pk}/", body, format="json")


def test_staff_make_labels_once_per_clinic(jwt_client, member, other_clinic, outsider):
    api = jwt_client(member)
    made = api.post("/api/labels/", {"name": " Convênio  Unimed ", "color": "#2F80ED"}, format="json")
    assert made.status_code == 201, made.content
    assert made.json() == {"id": made.json()["id"], "name": "Convênio Unimed", "color": "#2f80ed"}
    assert api.get("/api/labels/").json() == [made.json()]
    again = api.post("/api/labels/", {"name": "Convênio Unimed", "color": "#000000"}, format="json")
    assert again.status_code == 400 and again.json()["field"] == "name"
    assert api.post("/api/labels/", {"name": "x", "color": "azul"}, format="json").json()["field"] == "color"
    assert jwt_client(outsider).get("/api/labels/").json() == []
    assert Event.objects.filter(type="labels:changed").count() == 1


def test_labels_go_on_conversations_and_filter_the_list(jwt_client, member, clinic, maria, carlos):
    api = jwt_client(member)
    urgent = create_label(clinic=clinic, actor=member, name="Urgente", color="#d62728")
    retorno = create_label(clinic=clinic, actor=member, name="Retorno", color="#2ca02c")
    answer = patch(api, maria, {"labels": [urgent.pk, retorno.pk]})
    assert answer.status_code == 200, answer.content
    assert {t["name"] for t in answer.json()["labels"]} == {"Urgente", "Retorno"}
    told = Event.objects.filter(type="conversation:updated").order_by("-seq").first()
    assert told.data["changed"] == ["labels"] and len(told.data["conversation"]["labels"]) == 2
    assert ids(api, label=urgent.pk) == [maria.pk]
    assert set(ids(api)) == {maria.pk, carlos.pk}
    assert patch(api, maria, {"labels": [retorno.pk]}).json()["labels"] == [
        {"id": retorno.pk, "name": "Retorno", "color": "#2ca02c"}
    ]
    assert ids(api, label=urgent.pk) == []
    audit = AuditEvent.objects.filter(action="conversation.labels").order_by("pk").last()
    assert audit.detail == {"from": sorted([urgent.pk, retorno.pk]), "to": [retorno.pk]}


def test_another_clinics_label_cannot_be_put_on(jwt_client, member, maria, other_clinic, outsider):
    theirs = create_label(clinic=other_clinic, actor=outsider, name="Deles", color="#111111")
    refused = patch(jwt_client(member), maria, {"labels": [theirs.pk]})
    assert refused.status_code == 400 and refused.json()["field"] == "labels"
    assert not maria.labels.exists() and Label.objects.count() == 1


def test_a_snoozed_conversation_leaves_the_open_list_until_woken(jwt_client, member, maria, carlos):
    api = jwt_client(member)
    until = timezone.now() + timedelta(hours=3)
    answer = patch(api, maria, {"snoozed_until": until.isoformat()})
    assert answer.status_code == 200 and answer.json()["snoozed_until"] is not None
    assert answer.json()["status"] == "open"
    assert ids(api, status="open") == [carlos.pk]
    assert ids(api, snoozed="true") == [maria.pk]
    assert set(ids(api)) == {maria.pk, carlos.pk}, "all conversations still lists it"
    assert patch(api, maria, {"snoozed_until": None}).json()["snoozed_until"] is None
    assert set(ids(api, status="open")) == {maria.pk, carlos.pk}


@pytest.mark.parametrize("when", [timedelta(minutes=-1), timedelta(0)])
def test_a_snooze_is_for_the_future(jwt_client, member, maria, when):
    refused = patch(jwt_client(member), maria, {"snoozed_until": (timezone.now() + when).isoformat()})
    assert refused.status_code == 400 and refused.json()["field"] == "snoozed_until"
    maria.refresh_from_db()
    assert maria.snoozed_until is None


def test_a_resolved_conversation_is_not_snoozed(jwt_client, member, maria):
    api = jwt_client(member)
    patch(api, maria, {"status": "resolved"})
    refused = patch(api, maria, {"snoozed_until": (timezone.now() + timedelta(hours=1)).isoformat()})
    assert refused.status_code == 400


def test_the_snooze_ends_on_its_own_by_a_task_kept_in_the_database(jwt_client, member, maria):
    api = jwt_client(member)
    assert patch(api, maria, {"snoozed_until": (timezone.now() + timedelta(seconds=2)).isoformat()}).status_code == 200
    worker = ["db_worker", "--batch", "--no-reload", "--no-startup-delay", "--queue-name", "*"]
    call_command(*worker, verbosity=0)  # a worker that starts now finds it not yet due
    maria.refresh_from_db()
    assert maria.snoozed_until is not None
    deadline = time.monotonic() + 15
    while maria.snoozed_until is not None:  # other worker processes, later: the task was kept
        assert time.monotonic() < deadline, "the snooze never ended"
        call_command(*worker, verbosity=0)
        maria.refresh_from_db()
    assert ids(api, status="open") == [maria.pk]
    told = Event.objects.filter(type="conversation:updated").order_by("-seq").first()
    assert told.data["changed"] == ["snoozed_until"] and told.data["conversation"]["snoozed_until"] is None


def test_the_patient_writing_ends_the_snooze_at_once(jwt_client, member, maria, clinic):
    api = jwt_client(member)
    patch(api, maria, {"snoozed_until": (timezone.now() + timedelta(days=1)).isoformat()})
    receive_inbound_message(clinic=clinic, phone="5511987654321", content="Ainda estou esperando")
    maria.refresh_from_db()
    assert maria.snoozed_until is None
    told = Event.objects.filter(type="conversation:updated").order_by("-seq").first()
    assert told.data["changed"] == ["snoozed_until"]
    assert Conversation.objects.get().status == "open"


def test_resolving_a_snoozed_conversation_ends_its_snooze(jwt_client, member, maria):
    api = jwt_client(member)
    patch(api, maria, {"snoozed_until": (timezone.now() + timedelta(days=1)).isoformat()})
    resolved = patch(api, maria, {"status": "resolved"}).json()
    assert resolved["status"] == "resolved" and resolved["snoozed_until"] is None
    told = Event.objects.filter(type="conversation:updated").order_by("-seq").first()
    assert told.data["changed"] == ["status", "snoozed_until"]
    audit = AuditEvent.objects.filter(action="conversation.status").get()
    assert audit.detail["status"] == {"from": "open", "to": "resolved"} and audit.detail["snoozed_until"]["to"] is None
