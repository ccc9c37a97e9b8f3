"""The inbox list, one conversation, its status and assignee, and its timeline actions, over the API."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from conversations.actions.conversations import assign_conversation, set_conversation_status
from conversations.actions.inbound import receive_inbound_message
from conversations.actions.messages import mark_read
from conversations.models import Conversation, ConversationAction, Role
from realtime.models import Event

LIST = "/api/conversations/"


def receive(clinic, phone, name="", minutes_ago=0, **fields):
    return receive_inbound_message(
        clinic=clinic,
        phone=phone,
        contact_name=name,
        content=fields.pop("content", f"Oi de {name or phone}"),
        happened_at=timezone.now() - timedelta(minutes=minutes_ago),
        **fields,
    )


@pytest.fixture
def api(jwt_client, member):
    return jwt_client(member)


@pytest.fixture
def inbox(clinic, member, make_member):
    """Three conversations: Ana (newest), Bruno (assigned to a doctor, pending), Carla (resolved, oldest)."""
    doctor = make_member(clinic, Role.PROFESSIONAL, first_name="Paulo")
    ana = receive(clinic, "5511911110001", "Ana Souza", minutes_ago=1).conversation
    bruno = receive(clinic, "5511922220002", "Bruno Lima", minutes_ago=5).conversation
    carla = receive(clinic, "5521933330003", "Carla Dias", minutes_ago=30).conversation
    assign_conversation(conversation=bruno, assignee=doctor, actor=member)
    set_conversation_status(conversation=bruno, status="pending", actor=member)
    set_conversation_status(conversation=carla, status="resolved", actor=member)
    return {"ana": ana, "bruno": bruno, "carla": carla, "doctor": doctor}


def ids(response) -> list[int]:
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


def test_newest_activity_first_with_preview_and_unread(api, inbox):
    response = api.get(LIST)
    assert ids(response) == [inbox["ana"].pk, inbox["bruno"].pk, inbox["carla"].pk]
    row = response.json()["results"][0]
    assert row["contact"] == {
        "id": inbox["ana"].contact_id,
        "name": "Ana Souza",
        "display_name": "Ana Souza",
        "phone": "5511911110001",
        "phone_display": "+55 11 91111-0001",
        "whatsapp_user_id": "",
        "whatsapp_username": "",
    }
    assert row["last_message"] == {
        "content": "Oi de Ana Souza",
        "message_type": "text",
        "direction": "inbound",
        "sender_type": "patient",
        "sender_id": None,
    }
    assert row["unread_count"] == 1 and row["status"] == "open" and row["assignee"] is None
    assert row["last_message_at"].endswith("Z") or "+00:00" in row["last_message_at"]


@pytest.mark.parametrize(
    "query,expected",
    [
        ("status=open", ["ana"]),
        ("status=resolved", ["carla"]),
        ("assignee=none", ["ana", "carla"]),
        ("q=bruno", ["bruno"]),
        ("q=sOuZa", ["ana"]),
        ("q=21 93333", ["carla"]),
        ("q=ninguem", []),
    ],
)
def test_filters(api, inbox, query, expected):
    assert ids(api.get(f"{LIST}?{query}")) == [inbox[name].pk for name in expected]


def test_assignee_me_and_by_id(jwt_client, api, inbox):
    assert ids(api.get(f"{LIST}?assignee={inbox['doctor'].pk}")) == [inbox["bruno"].pk]
    assert ids(jwt_client(inbox["doctor"]).get(f"{LIST}?assignee=me")) == [inbox["bruno"].pk]
    assert ids(api.get(f"{LIST}?assignee=me")) == []


def test_a_conversation_without_messages_sorts_by_creation(api, inbox, clinic):
    empty = Conversation.objects.create(clinic=clinic, contact=inbox["carla"].contact, status="open")
    assert ids(api.get(LIST))[0] == empty.pk


def test_cursor_pages_through_everything_once_even_with_equal_times(api, clinic):
    same_time = timezone.now()
    for n in range(7):
        receive_inbound_message(clinic=clinic, phone=f"55119000000{n:02d}", content="Oi", happened_at=same_time)
    seen, cursor = [], None
    while True:
        response = api.get(LIST, {"limit": 3, **({"cursor": cursor} if cursor else {})})
        seen += ids(response)
        cursor = response.json()["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 7 and len(set(seen)) == 7


@pytest.mark.parametrize(
    "query,field",
    [
        ("cursor=%%%", "cursor"),
        ("cursor=WzFd", "cursor"),
        ("status=archived", "status"),
        ("limit=101", "limit"),
        ("limit=abc", "limit"),
        ("assignee=someone", "assignee"),
    ],
)
def test_bad_list_parameters_are_400s_naming_the_field(api, inbox, query, field):
    response = api.get(f"{LIST}?{query}")
    assert response.status_code == 400 and response.json()["field"] == field


def test_unread_counts_are_each_users_own(jwt_client, api, member, inbox):
    ana = inbox["ana"]
    mark_read(user=member, conversation=ana, message=ana.messages.get())
    doctor_rows = {r["id"]: r["unread_count"] for r in jwt_client(inbox["doctor"]).get(LIST).json()["results"]}
    my_rows = {r["id"]: r["unread_count"] for r in api.get(LIST).json()["results"]}
    assert (my_rows[ana.pk], doctor_rows[ana.pk]) == (0, 1)


def test_detail_has_the_latest_50_messages_oldest_first_and_the_actions(api, clinic, member):
    conversation = None
    for n in range(55):
        conversation = receive(
            clinic, "5511911110001", content=f"m{n}", minutes_ago=60 - n, external_id=f"w{n}"
        ).conversation
    api.post(
        f"{LIST}{conversation.pk}/actions/",
        {"action_type": "appointment_created", "action_data": {"at": "14:00"}},
        format="json",
    )
    body = api.get(f"{LIST}{conversation.pk}/").json()
    assert [m["content"] for m in body["messages"]] == [f"m{n}" for n in range(5, 55)]
    assert body["has_older"] is True and body["read_up_to"] is None
    assert body["actions"][0]["action_type"] == "appointment_created"
    assert body["conversation"]["id"] == conversation.pk


def test_patch_status_and_assignee_together(api, inbox):
    url = f"{LIST}{inbox['ana'].pk}/"
    response = api.patch(url, {"status": "pending", "assignee": inbox["doctor"].pk}, format="json")
    assert response.status_code == 200
    assert response.json()["status"] == "pending" and response.json()["assignee"]["id"] == inbox["doctor"].pk
    assert api.patch(url, {"assignee": None}, format="json").json()["assignee"] is None


@pytest.mark.parametrize(
    "body,field",
    [
        ({}, "non_field_errors"),
        ({"status": "archived"}, "status"),
        ({"assignee": "5"}, "assignee"),
        ({"status": "open", "colour": "red"}, "colour"),
    ],
)
def test_bad_patches_are_400s_and_change_nothing(api, inbox, body, field):
    seq = Event.objects.latest("seq").seq
    response = api.patch(f"{LIST}{inbox['ana'].pk}/", body, format="json")
    assert response.status_code == 400 and response.json()["field"] == field
    assert Event.objects.latest("seq").seq == seq


def test_the_assignee_must_be_staff_of_the_clinic(api, inbox, outsider):
    for assignee in (outsider.pk, 987654):
        response = api.patch(f"{LIST}{inbox['ana'].pk}/", {"assignee": assignee}, format="json")
        assert response.status_code == 400 and response.json()["field"] == "assignee"
    assert Conversation.objects.get(pk=inbox["ana"].pk).assignee is None


def test_actions_list_and_create(api, inbox):
    url = f"{LIST}{inbox['ana'].pk}/actions/"
    created = api.post(
        url, {"action_type": "appointment_created", "action_data": {"date": "2026-12-03"}}, format="json"
    )
    assert created.status_code == 201
    assert api.get(url).json() == [created.json()]
    bad = api.post(url, {"action_type": "Bad Type"}, format="json")
    assert bad.status_code == 400 and bad.json()["field"] == "action_type"
    assert ConversationAction.objects.count() == 1


def test_clinics_of_the_caller(jwt_client, member, clinic, other_clinic):
    from conversations.models import Membership

    Membership.objects.create(user=member, clinic=other_clinic, role=Role.ADMIN)
    rows = jwt_client(member, other_clinic).get("/api/clinics/").json()
    assert [(r["slug"], r["role"], r["active"]) for r in rows] == [
        ("aurora", "receptionist", False),
        ("boreal", "admin", True),
    ]


def test_contacts_list_search_and_detail(api, inbox):
    rows = api.get("/api/contacts/", {"q": "lima"}).json()["results"]
    assert [r["name"] for r in rows] == ["Bruno Lima"]
    detail = api.get(f"/api/contacts/{rows[0]['id']}/")
    assert detail.status_code == 200 and detail.json()["phone"] == "5511922220002"
    first = api.get("/api/contacts/", {"limit": 2}).json()
    rest = api.get("/api/contacts/", {"limit": 2, "cursor": first["next_cursor"]}).json()
    assert len(first["results"]) == 2 and len(rest["results"]) == 1 and rest["next_cursor"] is None


def test_a_patient_without_a_phone_is_shown_and_searched_by_username_or_id(api, clinic):
    receive_inbound_message(
        clinic=clinic,
        whatsapp_user_id="BR.13491208655302741918",
        whatsapp_parent_user_id="BR.ENT.11815799212886844830",
        whatsapp_username="realsheenanelson",
        profile_name="Sheena Nelson",
        content="Oi",
    )
    for q in ("@realsheenanelson", "sheenanel", "BR.13491208655302741918"):
        rows = api.get("/api/contacts/", {"q": q}).json()["results"]
        assert [r["display_name"] for r in rows] == ["Sheena Nelson"], q
        listed = api.get(LIST, {"q": q}).json()["results"]
        assert [r["contact"]["display_name"] for r in listed] == ["Sheena Nelson"], q
    assert api.get(LIST, {"q": "ninguem"}).json()["results"] == []
    detail = api.get(f"/api/contacts/{rows[0]['id']}/").json()
    assert detail["phone"] is None and detail["phone_display"] == "sem telefone"
    assert (detail["whatsapp_username"], detail["whatsapp_parent_user_id"], detail["profile_name"]) == (
        "realsheenanelson",
        "BR.ENT.11815799212886844830",
        "Sheena Nelson",
    )


@pytest.mark.parametrize("bad", ["a\x00b", "\udbb3", {"k\x00": 1}, ["ok", {"x": "\ud845"}]])
def test_action_data_the_database_cannot_store_is_a_400_not_a_500(api, inbox, bad):
    conversation = inbox["ana"]
    body = json.dumps({"action_type": "note", "action_data": {"v": bad}})  # escaped, as JSON carries them
    response = api.post(f"{LIST}{conversation.pk}/actions/", body, content_type="application/json")
    assert response.status_code == 400 and response.json()["field"] == "action_data"
    assert not ConversationAction.objects.exists()
