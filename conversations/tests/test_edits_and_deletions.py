"""A patient's edits and deletions, in the shape Meta's webhook reference documents (`edit` with the new
message, `revoke` naming the original), through the signed webhook: the edited message shows its new text
marked *editada* with the former text kept for the record, a deleted one shows *mensagem apagada*; neither
becomes a message of its own; every screen is told; one the clinic does not have is kept as before."""

import pytest

from conftest import whatsapp_payload
from conversations.actions.inbound import receive_inbound_message
from conversations.models import Message
from realtime.models import Event

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def original(clinic, whatsapp_channel) -> Message:
    return receive_inbound_message(
        clinic=clinic,
        phone="5511987654321",
        contact_name="Maria Souza",
        content="Queria remarcar para quarta",
        external_id="wamid.ORIGINAL01",
    ).message


def test_an_edited_message_shows_its_new_text_and_keeps_the_former(whatsapp_post, original, member, client):
    before = Message.objects.count()
    assert whatsapp_post("edit").status_code == 200
    edited = Message.objects.get(pk=original.pk)
    assert edited.content == "Queria remarcar para quinta, não quarta"
    assert edited.metadata["edits"][0]["content"] == "Queria remarcar para quarta"
    assert Message.objects.count() == before, "never a message of its own"
    told = Event.objects.filter(type="message:updated").latest("seq")
    assert told.data["message"]["id"] == edited.pk and told.data["message"]["content"] == edited.content
    assert whatsapp_post("edit").status_code == 200  # delivered again: one edit in the record
    assert len(Message.objects.get(pk=original.pk).metadata["edits"]) == 1
    client.force_login(member)
    page = client.get(f"/inbox/{original.conversation_id}/").text
    bubble = page.split(f'id="m{original.pk}"')[1].split("</article>")[0]
    assert "quinta, não quarta" in bubble and 'class="edited"' in bubble and "editada" in bubble
    from conversations.search import search_messages

    hits, _ = search_messages(original.clinic, "quinta")
    assert [hit.message_id for hit in hits] == [original.pk], "found by its new text"


def test_a_deleted_message_shows_as_deleted_and_stays_in_the_record(whatsapp_post, original, member, client):
    before = Message.objects.count()
    assert whatsapp_post("revoke").status_code == 200
    deleted = Message.objects.get(pk=original.pk)
    assert deleted.metadata["revoked_at"] and deleted.content == "Queria remarcar para quarta"
    assert Message.objects.count() == before
    client.force_login(member)
    page = client.get(f"/inbox/{original.conversation_id}/").text
    bubble = page.split(f'id="m{original.pk}"')[1].split("</article>")[0]
    assert "Mensagem apagada" in bubble and "Queria remarcar para quarta" not in bubble


def test_a_change_to_a_message_the_clinic_does_not_have_is_kept_as_a_message(whatsapp_post, clinic, whatsapp_channel):
    payload = whatsapp_payload("edit")
    assert whatsapp_post(payload).status_code == 200
    kept = Message.objects.get(external_id="wamid.EDIT01")
    assert kept.metadata["edit"]["original_message_id"] == "wamid.ORIGINAL01"


def test_another_patient_cannot_edit_or_delete_someone_elses_message(whatsapp_post, original):
    for name in ("edit", "revoke"):
        payload = whatsapp_payload(name)
        value = payload["entry"][0]["changes"][0]["value"]
        value["contacts"][0]["wa_id"] = value["messages"][0]["from"] = "5511911112222"
        assert whatsapp_post(payload).status_code == 200
    untouched = Message.objects.get(pk=original.pk)
    assert untouched.content == "Queria remarcar para quarta" and "revoked_at" not in untouched.metadata


def test_a_deleted_photo_hides_its_file_and_the_list_previews_it_as_deleted(
    whatsapp_post, clinic, whatsapp_channel, member, client
):
    from conversations.selectors import conversations_by_activity

    photo = receive_inbound_message(
        clinic=clinic,
        phone="5511987654321",
        message_type="image",
        content="foto do exame",
        external_id="wamid.ORIGINAL01",
        metadata={"media_id": "1", "media_status": "failed", "media_error": "x"},
    ).message
    assert whatsapp_post("revoke").status_code == 200
    client.force_login(member)
    page = client.get(f"/inbox/{photo.conversation_id}/").text
    bubble = page.split(f'id="m{photo.pk}"')[1].split("</article>")[0]
    assert "Mensagem apagada" in bubble and "foto do exame" not in bubble and "media-note" not in bubble
    row = conversations_by_activity(clinic).get(pk=photo.conversation_id)
    assert row.last_message_content == "🚫 Mensagem apagada"
    told = Event.objects.filter(type="conversation:updated").latest("seq")
    assert told.data["changed"] == ["last_message"]


def test_deleting_a_message_the_clinic_never_had_asks_the_clinic_for_nothing(whatsapp_post, clinic, whatsapp_channel):
    from conversations.models import Conversation

    assert whatsapp_post("revoke").status_code == 200
    kept = Message.objects.get(external_id="wamid.REVOKE01")
    conversation = Conversation.objects.get(pk=kept.conversation_id)
    assert conversation.awaiting_since is None, "no wait begins"
