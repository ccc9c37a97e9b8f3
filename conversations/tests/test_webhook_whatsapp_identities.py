"""Patients as WhatsApp identifies them now: by phone, by business-scoped user id (BSUID) when a username
hides the phone, or both; number and id changes; and replies the clinic sends from the WhatsApp Business
app. Every case goes through the webhook as Meta sends it (fixtures in the shapes Meta documents)."""

import json
import logging

import pytest
from django_tasks_db.models import DBTaskResult

from conftest import whatsapp_payload
from conversations.actions.inbound import receive_inbound_message
from conversations.actions.messages import send_outbound_message, update_message_status
from conversations.models import Contact, Conversation, Message

BSUID = "BR.13491208655302741918"
PARENT = "BR.ENT.11815799212886844830"


def value_of(payload: dict) -> dict:
    return payload["entry"][0]["changes"][0]["value"]


def message_of(payload: dict) -> dict:
    value = value_of(payload)
    return (value.get("messages") or value.get("message_echoes"))[0]


def snapshot() -> dict:
    return {
        "contacts": list(Contact.objects.order_by("pk").values()),
        "conversations": list(Conversation.objects.order_by("pk").values("pk", "contact", "status")),
        "messages": list(Message.objects.order_by("pk").values("pk", "external_id", "conversation", "status")),
    }


@pytest.fixture
def api(jwt_client, member):
    return jwt_client(member)


# --- Identity: phone, user id, both ---------------------------------------------------------------------


def test_a_patient_without_a_phone_is_stored_by_user_id_never_dropped(whatsapp_post, whatsapp_channel, api):
    response = whatsapp_post("username_only")
    assert response.status_code == 200 and response.json()["received"] == {"messages": 1, "statuses": 0, "ignored": 0}
    contact = Contact.objects.get()
    assert (contact.phone, contact.whatsapp_user_id, contact.whatsapp_parent_user_id) == ("", BSUID, PARENT)
    assert (contact.whatsapp_username, contact.profile_name, contact.display_name) == (
        "realsheenanelson",
        "Sheena Nelson",
        "Sheena Nelson",
    )
    assert contact.name == "", "the clinic's own name for the patient stays theirs to give"
    assert Message.objects.get().content == "Tem horário amanhã?"
    row = api.get("/api/conversations/").json()["results"][0]
    assert row["contact"]["phone"] is None and row["contact"]["phone_display"] == "sem telefone"
    assert row["contact"]["whatsapp_user_id"] == BSUID and row["unread_count"] == 1


def test_the_username_only_follow_up_of_a_patient_known_by_phone_and_id_joins_them(whatsapp_post, whatsapp_channel):
    whatsapp_post("phone_and_user_id")
    assert whatsapp_post("username_only").json()["received"]["messages"] == 1
    contact = Contact.objects.get()
    assert (contact.phone, contact.whatsapp_user_id) == ("5511987654321", BSUID)
    conversation = Conversation.objects.get()
    assert list(conversation.messages.order_by("created_at").values_list("external_id", flat=True)) == [
        "wamid.PHONEANDID01",
        "wamid.USERNAME01",
    ]


def test_a_patient_first_known_by_id_gains_the_phone_when_whatsapp_shares_it(whatsapp_post, whatsapp_channel):
    whatsapp_post("username_only")
    whatsapp_post("phone_and_user_id")
    contact = Contact.objects.get()
    assert (contact.phone, contact.whatsapp_user_id, contact.whatsapp_parent_user_id) == (
        "5511987654321",
        BSUID,
        PARENT,
    )
    assert Conversation.objects.count() == 1 and Message.objects.count() == 2


def test_a_payload_whose_phone_and_id_name_two_patients_merges_nobody(whatsapp_post, whatsapp_channel, clinic, caplog):
    by_phone = receive_inbound_message(clinic=clinic, phone="5511987654321", content="Oi").contact
    by_id = receive_inbound_message(clinic=clinic, whatsapp_user_id=BSUID, content="Oi").contact
    with caplog.at_level(logging.WARNING, logger="conversations.actions.contacts"):
        assert whatsapp_post("phone_and_user_id").status_code == 200
    by_phone.refresh_from_db()
    by_id.refresh_from_db()
    assert Contact.objects.count() == 2 and Conversation.objects.count() == 2
    assert (by_phone.phone, by_phone.whatsapp_user_id) == ("5511987654321", "")
    assert (by_id.phone, by_id.whatsapp_user_id) == ("", BSUID)
    assert Message.objects.get(external_id="wamid.PHONEANDID01").conversation.contact == by_phone
    assert any("kept apart" in record.getMessage() for record in caplog.records)


def test_a_username_that_passed_to_another_patient_leaves_the_first(whatsapp_post, whatsapp_channel, clinic):
    earlier = receive_inbound_message(
        clinic=clinic, phone="5511900000001", whatsapp_username="realsheenanelson", content="Oi"
    ).contact
    whatsapp_post("username_only")
    earlier.refresh_from_db()
    assert earlier.whatsapp_username == ""
    assert Contact.objects.get(whatsapp_user_id=BSUID).whatsapp_username == "realsheenanelson"


def test_the_profile_name_stays_current_but_never_renames_what_the_clinic_chose(
    whatsapp_post, whatsapp_channel, clinic
):
    receive_inbound_message(clinic=clinic, whatsapp_user_id=BSUID, contact_name="Sheena (cardiologia)", content="Oi")
    payload = whatsapp_payload("username_only")
    value_of(payload)["contacts"][0]["profile"] = {"name": "Sheena N.", "username": "@sheena.n"}
    whatsapp_post(payload)
    contact = Contact.objects.get()
    assert (contact.name, contact.profile_name, contact.whatsapp_username) == (
        "Sheena (cardiologia)",
        "Sheena N.",
        "sheena.n",
    )


def test_a_record_with_no_phone_and_no_id_is_refused_and_logged_not_a_500(whatsapp_post, whatsapp_channel):
    payload = whatsapp_payload("username_only")
    del message_of(payload)["from_user_id"], message_of(payload)["from_parent_user_id"]
    value_of(payload)["contacts"] = []
    response = whatsapp_post(payload)
    assert response.status_code == 200 and response.json()["received"]["ignored"] == 1
    assert not Message.objects.exists()


def test_a_phone_that_is_not_a_number_does_not_lose_a_message_that_has_a_user_id(whatsapp_post, whatsapp_channel):
    payload = whatsapp_payload("phone_and_user_id")
    message_of(payload)["from"] = value_of(payload)["contacts"][0]["wa_id"] = "not-a-number"
    assert whatsapp_post(payload).json()["received"]["messages"] == 1
    assert Contact.objects.get().whatsapp_user_id == BSUID


@pytest.mark.parametrize(
    "fixture", ["username_only", "phone_and_user_id", "echo_text", "system_changed_number", "system_changed_user_id"]
)
def test_a_redelivered_notification_changes_nothing(whatsapp_post, whatsapp_channel, clinic, fixture):
    receive_inbound_message(clinic=clinic, phone="5511987654321", whatsapp_user_id=BSUID, content="Oi")
    whatsapp_post(fixture)
    before = snapshot()
    assert whatsapp_post(fixture).status_code == 200
    assert snapshot() == before


# --- System messages: number and id changes -----------------------------------------------------------------


@pytest.fixture
def sheena(clinic, member):
    """A patient known by phone and id, with an open conversation the clinic has read to the end."""
    result = receive_inbound_message(
        clinic=clinic, phone="5511987654321", whatsapp_user_id=BSUID, content="Bom dia", external_id="wamid.OLD1"
    )
    send_outbound_message(conversation=result.conversation, sender=member, content="Bom dia, Sheena!")
    return result


def test_a_number_change_moves_the_patient_keeping_history_and_the_open_conversation(
    whatsapp_post, whatsapp_channel, sheena, api, django_capture_on_commit_callbacks
):
    before = api.get("/api/conversations/").json()["results"][0]
    with django_capture_on_commit_callbacks(execute=True):  # the commit that bumps the read cache
        assert whatsapp_post("system_changed_number").json()["received"]["messages"] == 1
    contact = Contact.objects.get()
    assert contact.pk == sheena.contact.pk
    assert (contact.phone, contact.whatsapp_user_id) == ("5511912345678", "BR.99887766554433221100")
    line = Message.objects.get(external_id="wamid.SYSNUMBER01")
    assert (line.conversation_id, line.sender_type, line.message_type) == (sheena.conversation.pk, "system", "system")
    assert "changed from 5511987654321 to 5511912345678" in line.content
    after = api.get("/api/conversations/").json()["results"][0]
    assert after["unread_count"] == before["unread_count"], "a system line is never unread"
    assert after["last_message"] == before["last_message"], "nor the list's preview"
    assert after["contact"]["phone"] == "5511912345678"
    # The patient's next message, from the new number, lands in the same conversation.
    payload = whatsapp_payload("text")
    message_of(payload)["from"] = value_of(payload)["contacts"][0]["wa_id"] = "5511912345678"
    whatsapp_post(payload)
    assert Contact.objects.count() == 1 and Conversation.objects.count() == 1


def test_a_number_change_to_another_patients_number_keeps_both_whole(
    whatsapp_post, whatsapp_channel, sheena, clinic, caplog
):
    other = receive_inbound_message(clinic=clinic, phone="5511912345678", content="Oi").contact
    with caplog.at_level(logging.WARNING, logger="conversations.actions.contacts"):
        assert whatsapp_post("system_changed_number").status_code == 200
    sheena.contact.refresh_from_db()
    other.refresh_from_db()
    assert (sheena.contact.phone, sheena.contact.whatsapp_user_id) == ("5511987654321", BSUID), "nothing half-moved"
    assert (other.phone, other.whatsapp_user_id) == ("5511912345678", "")
    line = Message.objects.get(external_id="wamid.SYSNUMBER01")
    assert line.conversation == sheena.conversation and line.metadata["changed"] == []
    assert any("kept apart, nothing changed" in record.getMessage() for record in caplog.records)


def test_a_number_change_carries_the_new_parent_id_too(whatsapp_post, whatsapp_channel, clinic):
    receive_inbound_message(clinic=clinic, phone="5511987654321", whatsapp_user_id=BSUID, content="Oi")
    payload = whatsapp_payload("system_changed_number")
    message_of(payload)["system"]["parent_user_id"] = "BR.ENT.22222222222222222222"
    whatsapp_post(payload)
    contact = Contact.objects.get()
    assert contact.whatsapp_parent_user_id == "BR.ENT.22222222222222222222"
    assert sorted(Message.objects.get(message_type="system").metadata["changed"]) == [
        "phone",
        "whatsapp_parent_user_id",
        "whatsapp_user_id",
    ]


def test_a_new_user_id_with_a_known_phone_is_recorded_so_id_only_messages_find_the_patient(
    whatsapp_post, whatsapp_channel, clinic
):
    first = receive_inbound_message(clinic=clinic, phone="5511987654321", whatsapp_user_id="BR.111", content="Oi")
    whatsapp_post("phone_and_user_id")  # the same phone, a user id WhatsApp issued since
    assert Contact.objects.get().whatsapp_user_id == BSUID
    whatsapp_post("username_only")
    assert Contact.objects.count() == 1 and Conversation.objects.get() == first.conversation


def test_a_profile_name_change_on_whatsapp_shows_until_the_clinic_names_the_patient(
    whatsapp_post, whatsapp_channel, api
):
    whatsapp_post("username_only")
    payload = whatsapp_payload("username_only")
    message_of(payload)["id"] = "wamid.USERNAME02"
    value_of(payload)["contacts"][0]["profile"]["name"] = "Sheena Casada"
    whatsapp_post(payload)
    assert Contact.objects.get().display_name == "Sheena Casada"
    assert api.get("/api/conversations/").json()["results"][0]["contact"]["display_name"] == "Sheena Casada"


@pytest.mark.parametrize("key", ["from_parent_user_id", "from_user_id"])
def test_a_malformed_id_beside_a_good_one_does_not_lose_the_message(whatsapp_post, whatsapp_channel, key):
    payload = whatsapp_payload("phone_and_user_id")
    message_of(payload)[key] = "not an id"
    value_of(payload)["contacts"][0].pop(key.removeprefix("from_"), None)
    assert whatsapp_post(payload).json()["received"]["messages"] == 1
    assert Contact.objects.get().phone == "5511987654321"


def test_the_system_line_is_in_the_conversation_as_the_api_shows_it(whatsapp_post, whatsapp_channel, sheena, api):
    whatsapp_post("system_changed_number")
    messages = api.get(f"/api/conversations/{sheena.conversation.pk}/").json()["messages"]
    line = next(m for m in messages if m["external_id"] == "wamid.SYSNUMBER01")
    assert (line["sender_type"], line["message_type"], line["direction"]) == ("system", "system", "inbound")


def test_a_user_id_change_is_recorded_on_the_same_patient(whatsapp_post, whatsapp_channel, clinic, api):
    first = receive_inbound_message(clinic=clinic, whatsapp_user_id=BSUID, content="Oi")
    assert api.get("/api/conversations/").json()["results"][0]["unread_count"] == 1
    assert whatsapp_post("system_changed_user_id").json()["received"]["messages"] == 1
    contact = Contact.objects.get()
    assert contact.pk == first.contact.pk and contact.whatsapp_user_id == "BR.55443322110099887766"
    line = Message.objects.get(external_id="wamid.SYSUSERID01")
    assert line.conversation == first.conversation and line.message_type == "system"
    row = api.get("/api/conversations/").json()["results"][0]
    assert (row["unread_count"], row["last_message"]["content"]) == (1, "Oi"), "never unread, never the preview"
    payload = whatsapp_payload("username_only")
    message_of(payload)["from_user_id"] = value_of(payload)["contacts"][0]["user_id"] = "BR.55443322110099887766"
    whatsapp_post(payload)
    assert Contact.objects.count() == 1 and Conversation.objects.count() == 1


def test_an_old_message_redelivered_after_an_id_change_recreates_nobody(whatsapp_post, whatsapp_channel, clinic):
    receive_inbound_message(clinic=clinic, whatsapp_user_id=BSUID, content="Oi", external_id="wamid.BEFORE")
    whatsapp_post("system_changed_user_id")
    payload = whatsapp_payload("username_only")
    message_of(payload)["id"] = "wamid.BEFORE"
    del message_of(payload)["from_parent_user_id"], value_of(payload)["contacts"][0]["parent_user_id"]
    before = snapshot()
    assert whatsapp_post(payload).status_code == 200
    assert snapshot() == before


def test_a_change_notice_for_an_unknown_patient_starts_them_under_the_new_identifiers(whatsapp_post, whatsapp_channel):
    whatsapp_post("system_changed_number")
    contact = Contact.objects.get()
    assert (contact.phone, contact.whatsapp_user_id) == ("5511912345678", "BR.99887766554433221100")
    assert contact.display_name == "+55 11 91234-5678"


# --- Replies to a patient without a phone ---------------------------------------------------------------------


def test_a_status_that_names_the_recipient_by_user_id_applies(whatsapp_post, whatsapp_channel, clinic, member):
    conversation = receive_inbound_message(clinic=clinic, whatsapp_user_id=BSUID, content="Oi").conversation
    message = send_outbound_message(conversation=conversation, sender=member, content="Olá!").message
    update_message_status(message=message, status="sent", external_id="wamid.OUTBOUND1")
    assert whatsapp_post("status_delivered_user_id").json()["received"]["statuses"] == 1
    message.refresh_from_db()
    assert message.status == "delivered"


# --- Echoes of the WhatsApp Business app ------------------------------------------------------------------------


def queued_deliveries() -> int:
    return DBTaskResult.objects.filter(task_path="conversations.tasks.deliver_message").count()


def test_a_reply_sent_from_the_business_app_appears_as_outbound_and_is_never_sent_again(
    whatsapp_post, whatsapp_channel, sheena
):
    deliveries = queued_deliveries()
    assert whatsapp_post("echo_text").json()["received"]["messages"] == 1
    echo = Message.objects.get(external_id="wamid.ECHO01")
    assert echo.conversation == sheena.conversation
    assert (echo.direction, echo.sender_type, echo.sender, echo.status) == ("outbound", "professional", None, "sent")
    assert echo.metadata["sent_from"] == "whatsapp_business_app"
    assert echo.content == "Confirmado para amanhã às 9h."
    assert queued_deliveries() == deliveries, "an echo is already with WhatsApp: never queued for sending"
    payload = whatsapp_payload("status_read")
    value_of(payload)["statuses"][0]["id"] = "wamid.ECHO01"
    whatsapp_post(payload)
    echo.refresh_from_db()
    assert echo.status == "read"


def test_a_status_that_comes_before_its_echo_is_applied_when_the_echo_arrives(whatsapp_post, whatsapp_channel):
    payload = whatsapp_payload("status_delivered")
    value_of(payload)["statuses"][0]["id"] = "wamid.ECHO01"
    whatsapp_post(payload)
    whatsapp_post("echo_text")
    assert Message.objects.get(external_id="wamid.ECHO01").status == "delivered"


def test_a_conversation_that_starts_with_an_echo_is_the_patients_named_by_phone(whatsapp_post, whatsapp_channel, api):
    whatsapp_post("echo_text")
    contact = Contact.objects.get()
    assert (contact.phone, contact.whatsapp_user_id) == ("5511987654321", BSUID), "the recipient, not the clinic"
    assert contact.name == "" and contact.display_name == "+55 11 98765-4321"
    row = api.get("/api/conversations/").json()["results"][0]
    assert row["contact"]["display_name"] == "+55 11 98765-4321" and row["unread_count"] == 0
    assert row["last_message"]["direction"] == "outbound"


def test_an_echo_to_a_patient_without_a_phone_goes_to_their_user_id(whatsapp_post, whatsapp_channel, clinic):
    first = receive_inbound_message(clinic=clinic, whatsapp_user_id=BSUID, content="Oi")
    payload = whatsapp_payload("echo_text")
    del message_of(payload)["to"], value_of(payload)["contacts"][0]["wa_id"]
    whatsapp_post(payload)
    assert Message.objects.get(external_id="wamid.ECHO01").conversation == first.conversation
    assert Contact.objects.count() == 1


# --- Everything else Meta sends stays -----------------------------------------------------------------------


def test_a_reply_is_linked_to_the_message_it_quotes(whatsapp_post, whatsapp_channel, sheena, member):
    question = send_outbound_message(conversation=sheena.conversation, sender=member, content="Confirma?").message
    update_message_status(message=question, status="sent", external_id="wamid.QUESTION")
    whatsapp_post("interactive_button")
    reply = Message.objects.get(external_id="wamid.INTERACTIVE01")
    assert reply.metadata["reply_to_message_id"] == question.pk
    assert reply.metadata["context"]["id"] == "wamid.QUESTION"


def test_a_reply_to_an_unknown_message_keeps_its_context_unlinked(whatsapp_post, whatsapp_channel):
    whatsapp_post("interactive_button")
    reply = Message.objects.get()
    assert reply.metadata["context"]["id"] == "wamid.QUESTION" and "reply_to_message_id" not in reply.metadata


def test_a_click_to_whatsapp_ad_is_kept_with_the_message(whatsapp_post, whatsapp_channel, api):
    whatsapp_post("referral")
    message = Message.objects.get()
    assert message.metadata["referral"]["headline"] == "Check-up completo"
    assert message.metadata["referral"]["source_type"] == "ad"
    conversation_id = message.conversation_id
    shown = api.get(f"/api/conversations/{conversation_id}/").json()["messages"][0]
    assert shown["metadata"]["referral"]["source_url"] == "https://fb.me/checkup"


def test_a_flow_answer_is_kept_with_its_fields(whatsapp_post, whatsapp_channel):
    whatsapp_post("nfm_reply")
    message = Message.objects.get()
    assert message.metadata["flow_response"] == {
        "flow_token": "agenda-77",
        "especialidade": "Cardiologia",
        "periodo": "manhã",
    }
    assert message.content == "Formulário respondido — especialidade: Cardiologia; periodo: manhã"


@pytest.mark.parametrize("broken", ["{not json", "[1, 2]", "", None])
def test_a_flow_answer_with_broken_json_is_kept_not_dropped(whatsapp_post, whatsapp_channel, broken):
    payload = whatsapp_payload("nfm_reply")
    message_of(payload)["interactive"]["nfm_reply"]["response_json"] = broken
    assert whatsapp_post(payload).json()["received"]["messages"] == 1
    message = Message.objects.get()
    assert message.content == "Sent" and "flow_response_error" in message.metadata
    assert message.metadata["interactive"]["nfm_reply"]["response_json"] == broken


def test_fields_the_inbox_does_not_know_are_kept(whatsapp_post, whatsapp_channel):
    payload = whatsapp_payload("text")
    message_of(payload)["group_id"] = "GROUP.123"
    message_of(payload)["novidade"] = {"a": 1}
    whatsapp_post(payload)
    assert Message.objects.get().metadata["extra"] == {"group_id": "GROUP.123", "novidade": {"a": 1}}


@pytest.mark.parametrize(
    "kind,body",
    [("poll_update", {"vote": 1}), ("text", {}), ("image", {"caption": "no id"}), ("location", {"address": None})],
)
def test_an_unknown_type_or_a_known_one_that_cannot_be_read_is_kept_as_unsupported(
    whatsapp_post, whatsapp_channel, kind, body
):
    payload = whatsapp_payload("text")
    message = message_of(payload)
    del message["text"]
    message["type"], message[kind] = kind, body
    assert whatsapp_post(payload).json()["received"]["messages"] == 1
    stored = Message.objects.get()
    assert (stored.message_type, stored.metadata["whatsapp_type"]) == ("unsupported", kind)
    assert stored.metadata["raw"][kind] == body


def test_a_change_of_a_field_the_inbox_does_not_use_is_acknowledged(whatsapp_post, whatsapp_channel):
    payload = whatsapp_payload("text")
    payload["entry"][0]["changes"][0]["field"] = "account_update"
    response = whatsapp_post(payload)
    assert response.status_code == 200 and not Message.objects.exists()


def test_text_with_a_nul_or_a_lone_surrogate_from_whatsapp_is_kept_cleaned_not_retried_forever(
    whatsapp_post, whatsapp_channel
):
    payload = whatsapp_payload("text")
    message_of(payload)["text"]["body"] = "Oi\x00 tudo bem\udbb3?"
    value_of(payload)["contacts"][0]["profile"]["name"] = "Sheena\x00"
    body = json.dumps(payload).encode()  # \u0000 and \udbb3 escapes, as JSON can carry them
    assert whatsapp_post(body).status_code == 200
    message = Message.objects.get()
    assert message.content == "Oi tudo bem\ufffd?" and message.conversation.contact.profile_name == "Sheena"
