"""Two records of one patient made one — in the API, the patient panel, the support admin and
`manage.py merge_duplicate_contacts` — in one transaction, live on every screen, audited without patient
data; never across clinics."""

import io
import json
import zipfile

import pytest
from django.core.management import call_command

from conversations.actions.conversations import add_conversation_action, assign_conversation
from conversations.actions.inbound import receive_inbound_message
from conversations.actions.labels import create_label
from conversations.actions.messages import mark_read
from conversations.actions.notes import add_note
from conversations.actions.patients import merge_patients
from conversations.errors import WrongClinic
from conversations.models import (
    AuditEvent,
    Contact,
    Conversation,
    ConversationAction,
    Message,
    Note,
    ReadMarker,
    Role,
)
from realtime.models import Event


@pytest.fixture
def admin(clinic, make_member):
    return make_member(clinic, Role.ADMIN)


@pytest.fixture
def two_records(clinic, member, admin):
    """Maria written down twice: by the clinic's records (a phone with its 9) and by WhatsApp, under a user id
    (a username hides the phone). Each has an open conversation with messages, a note, an action, a label
    and read marks, and an older resolved one."""
    by_phone = receive_inbound_message(clinic=clinic, phone="5511987654321", contact_name="Maria Souza", content="A1")
    by_user_id = receive_inbound_message(
        clinic=clinic, whatsapp_user_id="BR.1A2B3C", profile_name="Mari", content="B1", external_id="wamid.B1"
    )
    receive_inbound_message(clinic=clinic, phone="5511987654321", content="A2")
    receive_inbound_message(clinic=clinic, whatsapp_user_id="BR.1A2B3C", content="B2", external_id="wamid.B2")
    add_note(conversation=by_user_id.conversation, author=member, content="Nota do segundo cadastro")
    add_conversation_action(conversation=by_user_id.conversation, action_type="appointment_created")
    label = create_label(clinic=clinic, actor=admin, name="Retorno", color="#2f80ed")
    by_user_id.conversation.labels.add(label)
    assign_conversation(conversation=by_user_id.conversation, assignee=member, actor=admin)
    mark_read(user=member, conversation=by_phone.conversation, message=by_phone.message)
    mark_read(user=member, conversation=by_user_id.conversation, message=by_user_id.message)
    older = Conversation.objects.create(clinic=clinic, contact=by_user_id.contact, status="resolved")
    return by_phone.contact, by_user_id.contact, older


def test_a_clinic_admin_merges_two_records_into_one_patient_with_one_history(
    jwt_client, admin, member, two_records, clinic
):
    kept, other, older = two_records
    api = jwt_client(admin)
    url = f"/api/contacts/{kept.pk}/merge/"
    preview = api.get(url, {"merge_id": other.pk}).json()
    assert preview == {
        "kept": {"id": kept.pk, "display_name": "Maria Souza", "phone": "+55 11 98765-4321", "messages": 2},
        "merged": {"id": other.pk, "display_name": "Mari", "phone": "sem telefone", "messages": 2},
        "dropped": [],  # nothing of theirs the kept record cannot take
    }
    refused = api.post(url, {"merge_id": other.pk}, format="json")
    assert refused.status_code == 400 and refused.json()["field"] == "confirm"
    assert Contact.objects.count() == 2, "nothing before the confirmation"
    open_before = other.conversations.exclude(status="resolved").get().pk

    done = api.post(url, {"merge_id": other.pk, "confirm": True}, format="json")
    assert done.status_code == 200, done.content
    assert done.json() == {"kept": kept.pk, "merged": other.pk, "conversations": 2, "messages": 2}
    patient = Contact.objects.get()
    assert (patient.pk, patient.phone, patient.whatsapp_user_id, patient.name) == (
        kept.pk,
        "5511987654321",
        "BR.1A2B3C",
        "Maria Souza",
    ), "the kept record takes the WhatsApp ids it lacked"
    open_thread = Conversation.objects.exclude(status="resolved").get()
    assert sorted(open_thread.messages.values_list("content", flat=True)) == ["A1", "A2", "B1", "B2"]
    assert Note.objects.get().conversation_id == open_thread.pk
    assert ConversationAction.objects.get().conversation_id == open_thread.pk
    assert [label.name for label in open_thread.labels.all()] == ["Retorno"] and open_thread.assignee == member
    assert ReadMarker.objects.filter(user=member).count() == 1
    mine = jwt_client(member).get("/api/conversations/").json()["results"]
    assert [row["unread_count"] for row in mine if row["id"] == open_thread.pk] == [2], "A2 and B2 stay unread"
    assert Conversation.objects.get(pk=older.pk).contact_id == kept.pk
    gone = Event.objects.get(type="conversation:deleted")
    assert gone.data == {"conversation_id": open_before, "merged_into": open_thread.pk}, "its screens move"
    joined = Event.objects.filter(type="conversation:updated", conversation_id=open_thread.pk).latest("seq")
    assert joined.data["changed"] == ["contact", "merged"]
    audit = AuditEvent.objects.get(action="contact.merged")
    assert audit.actor == admin and audit.object_id == str(kept.pk)
    assert audit.detail == {"merged_id": other.pk, "conversations": 2, "messages": 2}, "ids and counts only"

    receive_inbound_message(clinic=clinic, whatsapp_user_id="BR.1A2B3C", content="B3", external_id="wamid.B3")
    assert Conversation.objects.exclude(status="resolved").get().messages.filter(content="B3").exists()

    archive = zipfile.ZipFile(io.BytesIO(b"".join(api.get(f"/api/contacts/{kept.pk}/export/").streaming_content)))
    exported = json.loads(archive.read("patient.json"))
    texts = sorted(m["content"] for c in exported["conversations"] for m in c["messages"])
    assert texts == ["A1", "A2", "B1", "B2", "B3"] and len(exported["conversations"]) == 2


def test_receptionists_cannot_merge_and_patients_of_two_clinics_never_are(
    jwt_client, member, admin, two_records, other_clinic, outsider
):
    kept, other, _ = two_records
    body = {"merge_id": other.pk, "confirm": True}
    assert jwt_client(member).post(f"/api/contacts/{kept.pk}/merge/", body, format="json").status_code == 403
    theirs = receive_inbound_message(clinic=other_clinic, phone="5521987654321", content="Oi").contact
    across = jwt_client(outsider).post(
        f"/api/contacts/{theirs.pk}/merge/", {"merge_id": kept.pk, "confirm": True}, format="json"
    )
    assert across.status_code == 400 and across.json()["field"] == "merge_id"
    ours = jwt_client(admin).post(
        f"/api/contacts/{kept.pk}/merge/", {"merge_id": theirs.pk, "confirm": True}, format="json"
    )
    assert ours.status_code == 400 and ours.json()["field"] == "merge_id"
    assert Contact.objects.count() == 3 and not AuditEvent.objects.filter(action="contact.merged").exists()
    with pytest.raises(WrongClinic):  # the action itself refuses, whoever calls it
        merge_patients(kept=kept, merged=theirs, actor=None)
    assert Message.objects.filter(conversation__contact=theirs).count() == 1


def test_merge_duplicate_contacts_finds_the_pairs_the_ninth_digit_joins_and_merges_them_when_told(clinic, capsys):
    """Records from before the canonical number: the same mobile with and without its 9 (the migration
    left the second with its number as its WhatsApp id only), per clinic; a landline a 9 away stays."""
    canonical = receive_inbound_message(
        clinic=clinic, phone="5511987654321", contact_name="Maria", content="Oi"
    ).contact
    Contact.objects.filter(pk=canonical.pk).update(whatsapp_id="5511987654321")  # as the upgrade copied it
    legacy = Contact.objects.create(clinic=clinic, whatsapp_id="551187654321", profile_name="Mari")
    Conversation.objects.create(clinic=clinic, contact=legacy)
    Message.objects.create(
        clinic=clinic,
        conversation=legacy.conversations.get(),
        direction="inbound",
        sender_type="patient",
        content="Velha",
    )
    Contact.objects.create(clinic=clinic, phone="551132654321")  # a landline: never the mobile's pair
    call_command("merge_duplicate_contacts")
    out = capsys.readouterr().out
    assert "Dry run" in out and f"#{canonical.pk}" in out and f"#{legacy.pk}" in out and Contact.objects.count() == 3
    call_command("merge_duplicate_contacts", "--yes")
    out = capsys.readouterr().out
    assert "Merged 1 pair" in out
    assert Contact.objects.count() == 2 and Contact.objects.filter(pk=canonical.pk).exists()
    merged = Contact.objects.get(pk=canonical.pk)
    assert merged.whatsapp_id == "551187654321", "WhatsApp's own form wins: replies go there"
    assert merged.conversations.count() == 1
    assert sorted(merged.conversations.get().messages.values_list("content", flat=True)) == ["Oi", "Velha"]
    call_command("merge_duplicate_contacts")
    assert "No duplicates" in capsys.readouterr().out


def test_a_clinic_admin_merges_from_the_patient_panel_after_a_confirmation_naming_both(
    client, admin, member, two_records
):
    kept, other, _ = two_records
    client.force_login(admin)
    client.get("/inbox/")
    panel = client.get(f"/inbox/{kept.conversations.get().pk}/").text
    assert f"/patients/{kept.pk}/merge/" in panel, "offered to clinic admins in the patient panel"
    found = client.get(f"/patients/{kept.pk}/merge/", {"q": "Mari"}).text
    assert f"?with={other.pk}" in found
    asked = client.get(f"/patients/{kept.pk}/merge/", {"with": other.pk}).text
    assert "Unir <strong>Mari</strong> (sem telefone, 2 mensagens)" in asked
    assert "ao cadastro de <strong>Maria Souza</strong> (+55 11 98765-4321, 2 mensagens)" in asked
    unconfirmed = client.post(f"/patients/{kept.pk}/merge/", {"merge_id": other.pk})
    assert unconfirmed.status_code == 302 and Contact.objects.count() == 2
    done = client.post(f"/patients/{kept.pk}/merge/", {"merge_id": other.pk, "confirm": "yes"})
    assert done.status_code == 302 and done["Location"].startswith("/inbox/")
    assert list(Contact.objects.values_list("pk", flat=True)) == [kept.pk]

    client.force_login(member)  # a receptionist: no merging
    assert f"/patients/{kept.pk}/merge/" not in client.get(done["Location"]).text
    assert client.get(f"/patients/{kept.pk}/merge/").status_code == 403


def test_another_clinics_patient_is_never_found_nor_merged_from_the_page(client, outsider, two_records, other_clinic):
    kept, other, _ = two_records
    theirs = receive_inbound_message(clinic=other_clinic, phone="5521987654321", contact_name="Maria", content="Oi")
    client.force_login(outsider)
    client.get("/inbox/")
    assert client.get(f"/patients/{kept.pk}/merge/").status_code == 404
    found = client.get(f"/patients/{theirs.contact.pk}/merge/", {"q": "Mari"}).text
    assert f"?with={kept.pk}" not in found and f"?with={other.pk}" not in found
    client.post(f"/patients/{theirs.contact.pk}/merge/", {"merge_id": kept.pk, "confirm": "yes"})
    assert Contact.objects.count() == 3


def test_support_merges_two_records_in_the_admin_choosing_the_one_that_stays(client, django_user_model, two_records):
    kept, other, _ = two_records
    support = django_user_model.objects.create_superuser("suporte", password="senha-de-suporte-123")
    client.force_login(support)
    chosen = {"action": "merge_contacts", "_selected_action": [kept.pk, other.pk]}
    asked = client.post("/admin/conversations/contact/", chosen)
    assert asked.status_code == 200 and "Maria Souza" in asked.text and "2 mensagens" in asked.text
    assert Contact.objects.count() == 2
    done = client.post("/admin/conversations/contact/", chosen | {"confirm_merge": "yes", "kept": str(other.pk)})
    assert done.status_code == 302
    patient = Contact.objects.get()
    assert patient.pk == other.pk and patient.phone == "5511987654321", "the chosen record stays, with the phone"
    audit = AuditEvent.objects.get(action="contact.merged")
    assert audit.actor == support and audit.detail["merged_id"] == kept.pk


def test_erasing_a_merged_patient_leaves_nothing_of_either_record(jwt_client, admin, two_records):
    """The joined conversation's logged events, and the admin's history of the merged-away record, are the
    kept patient's: an erasure of theirs finds them (LGPD)."""
    from conversations.tests.test_privacy import everything_stored, held

    kept, other, _ = two_records
    receive_inbound_message(clinic=kept.clinic, whatsapp_user_id="BR.1A2B3C", content="SEGREDO-DO-OUTRO-CADASTRO")
    api = jwt_client(admin)
    merged = api.post(f"/api/contacts/{kept.pk}/merge/", {"merge_id": other.pk, "confirm": True}, format="json")
    assert merged.status_code == 200
    assert api.post(f"/api/contacts/{kept.pk}/erase/", {"confirm": True}, format="json").status_code == 200
    stored = everything_stored()
    assert [m for m in ("SEGREDO-DO-OUTRO-CADASTRO", "Maria Souza", "BR.1A2B3C") if held(m, stored)] == []
