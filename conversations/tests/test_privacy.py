"""A patient's rights under LGPD, through the API, the admin and the commands: export, erasure, retention."""

import io
import json
import zipfile
from datetime import timedelta

import pytest
from django.core import serializers
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from conftest import whatsapp_payload
from conversations.actions.conversations import add_conversation_action
from conversations.actions.inbound import receive_inbound_message
from conversations.actions.integrations import create_integration_token
from conversations.actions.messages import mark_read, send_outbound_message
from conversations.actions.notes import add_note
from conversations.actions.patients import correct_patient_record
from conversations.models import (
    AuditEvent,
    Contact,
    Conversation,
    ConversationAction,
    DeliveryAttempt,
    Message,
    MessageAttachment,
    Note,
    PendingStatus,
    Role,
)
from realtime.models import Event

# Committed for real: files leave storage, and the long-poll reads from its own connection, after commit.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("simulated_number")]

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
PHONE = "5511987654321"
# Everything that says who the patient is or what was said: none of it may survive an erasure.
IDENTIFYING = [PHONE, "Maria Aurora Souza", "Mari Souza", "mari.souza", "BR.1A2B3C", "wamid.PAT1"]
IDENTIFYING += ["Tenho dor de cabeça", "Receita do dr. Paulo", "Paciente alérgica a dipirona", "receita.png"]
IDENTIFYING += ["Mãe da Maria ligou pedindo sigilo"]
# What an n8n automation writes about them, in its own words and shapes: Portuguese keys, nested, in lists.
IDENTIFYING += ["Alergia grave a penicilina", "Rua das Acácias 120", "Maria Aurora", "consulta-5511987654321"]
IDENTIFYING += ["Sugestão: Maria pode vir às 15h", "n8n-sugestao-maria-1", "Clínica da Maria (anúncio)"]
IDENTIFYING += ["Mora com a filha Joana"]  # staff's observations about them


@pytest.fixture
def admin_member(clinic, make_member):
    return make_member(clinic, Role.ADMIN)


@pytest.fixture
def patient(clinic, member, make_member):
    """A patient with a history: two conversations, texts both ways, a photo, a clinical note, a read mark."""
    first = receive_inbound_message(
        clinic=clinic,
        phone=PHONE,
        whatsapp_user_id="BR.1A2B3C",
        whatsapp_username="mari.souza",
        profile_name="Mari Souza",
        contact_name="Maria Aurora Souza",
        content="Tenho dor de cabeça",
        external_id="wamid.PAT1",
    )
    conversation = first.conversation
    photo = SimpleUploadedFile("receita.png", PNG, content_type="image/png")
    reply = send_outbound_message(
        conversation=conversation, sender=member, content="Receita do dr. Paulo", attachment=photo
    ).message
    DeliveryAttempt.objects.create(message=reply, number=1, provider="whatsapp_cloud", detail=f"to {PHONE}: ok")
    add_conversation_action(
        conversation=conversation,
        action_type="appointment_created",
        action_data={"starts_at": "2026-12-10T14:00:00-03:00", "note": "Paciente alérgica a dipirona"},
    )
    token = create_integration_token(clinic=clinic, name="n8n")[1]
    n8n_action = {
        "phone": PHONE,
        "action_type": "appointment_status_changed",
        "action_data": {
            "paciente": "Maria Aurora Souza",
            "telefone": PHONE,
            "detalhes": {"nome_completo": "Maria Aurora", "endereco": ["Rua das Acácias 120", {"obs": 7}]},
            "alergias": ["Alergia grave a penicilina"],
            "id_agenda": "consulta-5511987654321",
        },
    }
    n8n = APIClient(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert n8n.post(f"/webhooks/n8n/{clinic.slug}/", n8n_action, format="json").status_code == 201
    conversation.answered_by = "staff"
    conversation.save(update_fields=["answered_by"])
    suggestion = {"phone": PHONE, "sender_type": "ai", "content": "Sugestão: Maria pode vir às 15h"}
    suggestion["external_id"] = "n8n-sugestao-maria-1"
    kept = n8n.post(f"/webhooks/n8n/{clinic.slug}/", suggestion, format="json")
    assert kept.status_code == 202  # kept as a suggestion: staff answer this conversation
    receive_inbound_message(
        clinic=clinic,
        phone=PHONE,
        content="Quero marcar",
        metadata={"referral": {"headline": "Clínica da Maria (anúncio)", "source_type": "ad"}},
    )
    mark_read(user=member, conversation=conversation, message=first.message)
    add_note(conversation=conversation, author=member, content="Mãe da Maria ligou pedindo sigilo")
    correct_patient_record(contact=first.contact, actor=member, changes={"notes": "Mora com a filha Joana"})
    older = Conversation.objects.create(clinic=clinic, contact=first.contact, status="resolved")
    Message.objects.create(
        clinic=clinic, conversation=older, direction="inbound", sender_type="patient", content="Tenho dor de cabeça"
    )
    return first.contact


def zip_of(response) -> zipfile.ZipFile:
    return zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))


# --- Export ---------------------------------------------------------------------------------------------


def test_a_clinic_admin_exports_everything_held_about_a_patient(jwt_client, admin_member, patient):
    response = jwt_client(admin_member).get(f"/api/contacts/{patient.pk}/export/")
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    assert "no-store" in response["Cache-Control"]
    archive = zip_of(response)
    document = json.loads(archive.read("patient.json"))
    assert document["patient"]["phone"] == PHONE and document["patient"]["whatsapp_user_id"] == "BR.1A2B3C"
    assert document["patient"]["profile_name"] == "Mari Souza" and document["patient"]["name"] == "Maria Aurora Souza"
    assert len(document["conversations"]) == 2
    texts = [m["content"] for c in document["conversations"] for m in c["messages"]]
    expected = ["Tenho dor de cabeça", "Receita do dr. Paulo", "Quero marcar", "Tenho dor de cabeça"]
    assert sorted(texts) == sorted(expected)
    photo = next(m for c in document["conversations"] for m in c["messages"] if m["attachments"])
    assert archive.read(photo["attachments"][0]["path"]) == PNG
    assert photo["delivery_attempts"][0]["detail"] == f"to {PHONE}: ok"
    actions = [a for c in document["conversations"] for a in c["actions"]]
    assert actions[0]["action_data"]["note"] == "Paciente alérgica a dipirona"
    assert [m["user_id"] for c in document["conversations"] for m in c["read_marks"]]
    notes = [n for c in document["conversations"] for n in c["notes"]]
    assert [(n["suggestion"], n["content"]) for n in notes] == [
        (True, "Sugestão: Maria pode vir às 15h"),
        (False, "Mãe da Maria ligou pedindo sigilo"),
    ]
    assert any(a["action"] == "message.sent" for a in document["audit"])
    exported = AuditEvent.objects.get(action="contact.exported")
    assert (exported.actor, exported.object_id) == (admin_member, str(patient.pk))


def test_only_clinic_admins_export_or_erase(jwt_client, member, patient):
    api = jwt_client(member)  # a receptionist of the same clinic
    assert api.get(f"/api/contacts/{patient.pk}/export/").status_code == 403
    assert api.post(f"/api/contacts/{patient.pk}/erase/", {"confirm": True}, format="json").status_code == 403
    assert Contact.objects.get(pk=patient.pk).phone == PHONE
    assert not AuditEvent.objects.filter(action__in=["contact.exported", "contact.erased"]).exists()


def test_support_exports_a_patient_from_the_admin(client, django_user_model, patient):
    support = django_user_model.objects.create_superuser("suporte", "s@example.com", "senha-forte-123")
    client.force_login(support)
    response = client.post(
        "/admin/conversations/contact/", {"action": "export_contacts", "_selected_action": [patient.pk]}
    )
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    assert json.loads(zip_of(response).read("patient.json"))["patient"]["phone"] == PHONE


# --- Erasure --------------------------------------------------------------------------------------------


def held(marker: str, stored: str) -> bool:
    return marker in stored or json.dumps(marker)[1:-1] in stored  # as written, or as JSON escapes it


def everything_stored() -> str:
    """Every row of every table of the database, as text: each model's, and columns no model declares (the
    search index's), read with SQL."""
    from django.apps import apps
    from django.db import connection

    text = "".join(serializers.serialize("json", m._base_manager.all()) for m in apps.get_models())
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            text += repr(cursor.fetchall())
    return text


def test_erasure_leaves_nothing_that_identifies_the_patient_and_keeps_the_counts(
    jwt_client, admin_member, patient, settings, client, django_user_model
):
    support = django_user_model.objects.create_superuser("suporte", "s@example.com", "senha-forte-123")
    client.force_login(support)  # support edits the patient in the admin: its log names them
    form = {"clinic": patient.clinic_id, "name": "Maria Aurora Souza", "phone": PHONE, "status": "active"}
    form |= {"whatsapp_user_id": "BR.1A2B3C", "whatsapp_username": "mari.souza", "profile_name": "Mari Souza"}
    form |= {"email": "", "whatsapp_parent_user_id": ""}
    client.post(f"/admin/conversations/contact/{patient.pk}/change/", form | {"email": "mari@example.com"})
    identifying = [*IDENTIFYING, "mari@example.com"]
    stored = everything_stored()
    unseen = [marker for marker in identifying if not held(marker, stored)]
    assert unseen == [], "the check can see them all"
    file_path = MessageAttachment.objects.get().file.path
    messages_before = Message.objects.count()
    api = jwt_client(admin_member)

    refused = api.post(f"/api/contacts/{patient.pk}/erase/", {}, format="json")
    assert refused.status_code == 400 and refused.json()["field"] == "confirm"
    response = api.post(f"/api/contacts/{patient.pk}/erase/", {"confirm": True}, format="json")
    assert response.status_code == 200, response.content
    assert response.json() == {"conversations": 2, "messages": 4, "files": 1, "events": response.json()["events"]}

    stored = everything_stored()
    left = [marker for marker in identifying if held(marker, stored)]
    assert left == [], f"still stored after erasure: {left}"
    import os

    assert not os.path.exists(file_path), "the file is deleted from storage"
    assert Message.objects.count() == messages_before, "the clinic's counts stay true"
    assert set(Note.objects.values_list("content", "source_id")) == {("", "")}, "notes and suggestions blanked"
    actions = ConversationAction.objects.order_by("pk")
    assert [(a.action_type, a.action_data) for a in actions] == [
        ("appointment_created", {}),
        ("appointment_status_changed", {}),
    ], "the type and time stay; free-form data goes whatever its keys"
    for path in (f"/api/conversations/{c.pk}/" for c in Conversation.objects.filter(contact=patient)):
        shown = api.get(path).content.decode()
        assert [marker for marker in identifying if held(marker, shown)] == [], path
    assert api.get("/api/search/", {"q": "cabeça"}).json()["results"] == [], "the search index forgot the text"
    erased = Contact.objects.get(pk=patient.pk)
    assert erased.status == "erased" and erased.display_name == "Paciente anonimizado"
    audit = AuditEvent.objects.get(action="contact.erased")
    assert audit.actor == admin_member and audit.detail["messages"] == 4
    told = Event.objects.filter(type="conversation:updated").order_by("-seq").first()
    assert "erased" in told.data["changed"]


def test_support_erases_patients_from_the_admin_after_confirming(client, django_user_model, patient):
    support = django_user_model.objects.create_superuser("suporte", "s@example.com", "senha-forte-123")
    client.force_login(support)
    chosen = {"action": "erase_contacts", "_selected_action": [patient.pk]}
    asked = client.post("/admin/conversations/contact/", chosen)
    assert asked.status_code == 200 and "Maria Aurora Souza" in asked.text and "confirm_erasure" in asked.text
    assert Contact.objects.get(pk=patient.pk).phone == PHONE, "nothing happens before the confirmation"
    file_path = MessageAttachment.objects.get().file.path

    done = client.post("/admin/conversations/contact/", {**chosen, "confirm_erasure": "yes"}, REMOTE_ADDR="10.0.0.5")
    assert done.status_code == 302
    stored = everything_stored()
    assert [marker for marker in IDENTIFYING if held(marker, stored)] == []
    import os

    assert not os.path.exists(file_path)
    audit = AuditEvent.objects.get(action="contact.erased")
    assert (audit.actor, audit.ip, audit.object_id) == (support, "10.0.0.5", str(patient.pk))


def test_metas_old_notifications_delivered_again_after_erasure_do_not_bring_the_patient_back(
    jwt_client, admin_member, patient, clinic, whatsapp_channel, whatsapp_post
):
    """Meta redelivers what it sent before (the same message id, the old timestamp), and statuses of what the
    clinic sent them: none of it is kept, on the fast path or the full one."""
    old_message = whatsapp_payload("text")
    value = old_message["entry"][0]["changes"][0]["value"]
    value["messages"][0] |= {"id": "wamid.PAT1", "from": PHONE, "timestamp": "1750090000"}
    value["contacts"][0] |= {"wa_id": PHONE, "profile": {"name": "Mari Souza"}}
    sent = Message.objects.filter(direction="outbound").first()
    Message.objects.filter(pk=sent.pk).update(external_id="wamid.TO-MARIA")
    jwt_client(admin_member).post(f"/api/contacts/{patient.pk}/erase/", {"confirm": True}, format="json")
    contacts, messages = Contact.objects.count(), Message.objects.count()

    assert whatsapp_post(old_message).status_code == 200
    later = dict(value["messages"][0], id="wamid.PAT-BEFORE")  # another old one, from before the erasure
    assert (
        whatsapp_post(
            old_message
            | {"entry": [{"id": "1", "changes": [{"field": "messages", "value": {**value, "messages": [later]}}]}]}
        ).status_code
        == 200
    )
    status = whatsapp_payload("status_read")
    status["entry"][0]["changes"][0]["value"]["statuses"][0]["id"] = "wamid.TO-MARIA"
    assert whatsapp_post(status).status_code == 200

    assert (Contact.objects.count(), Message.objects.count()) == (contacts, messages), "nothing came back"
    assert not PendingStatus.objects.filter(external_id="wamid.TO-MARIA").exists()
    assert [marker for marker in IDENTIFYING if held(marker, everything_stored())] == []

    value["messages"][0] |= {"id": "wamid.NEW", "timestamp": str(int(timezone.now().timestamp()) + 5)}
    assert whatsapp_post(old_message).status_code == 200  # writing again after the erasure: a new patient
    assert Contact.objects.filter(phone=PHONE).exclude(pk=patient.pk).count() == 1
    assert (
        whatsapp_post(
            old_message
            | {"entry": [{"id": "1", "changes": [{"field": "messages", "value": {**value, "messages": [later]}}]}]}
        ).status_code
        == 200
    )
    kept = list(Message.objects.filter(conversation__contact__phone=PHONE).values_list("external_id", flat=True))
    assert kept == ["wamid.NEW"], "an old message of theirs, once they are a new patient, is still not theirs"


def test_after_erasure_the_same_phone_writing_again_is_a_new_patient(jwt_client, admin_member, patient, clinic):
    jwt_client(admin_member).post(f"/api/contacts/{patient.pk}/erase/", {"confirm": True}, format="json")
    again = receive_inbound_message(clinic=clinic, phone=PHONE, content="Oi de novo")
    assert again.contact.pk != patient.pk and again.conversation.contact.phone == PHONE


def test_erase_contact_command_is_a_dry_run_unless_told(patient, clinic, capsys):
    call_command("erase_contact", clinic.slug, str(patient.pk))
    assert "Dry run" in capsys.readouterr().out and Contact.objects.get(pk=patient.pk).phone == PHONE
    call_command("erase_contact", clinic.slug, str(patient.pk), "--yes")
    assert "Erased: 4 message text(s), 1 file(s)" in capsys.readouterr().out
    assert Contact.objects.get(pk=patient.pk).phone == ""
    assert AuditEvent.objects.get(action="contact.erased").actor is None  # the command line
    call_command("erase_contact", clinic.slug, str(patient.pk), "--yes")
    assert "already erased" in capsys.readouterr().out


def test_erase_contact_command_refuses_unknown_ids(clinic, other_clinic, patient):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="No patient"):
        call_command("erase_contact", other_clinic.slug, str(patient.pk), "--yes")
    with pytest.raises(CommandError, match="No clinic"):
        call_command("erase_contact", "nao-existe", str(patient.pk))
    assert Contact.objects.get(pk=patient.pk).phone == PHONE


# --- Retention ------------------------------------------------------------------------------------------


@pytest.fixture
def aged(clinic, patient):
    """The patient's older conversation and its message are 400 days old; the rest is recent."""
    clinic.retention_days = 365
    clinic.save(update_fields=["retention_days"])
    long_ago = timezone.now() - timedelta(days=400)
    older = Conversation.objects.get(contact=patient, status="resolved")
    older.messages.update(created_at=long_ago)
    Conversation.objects.filter(pk=older.pk).update(updated_at=long_ago, last_message_at=long_ago)
    first_two = list(Event.objects.filter(clinic=clinic).order_by("seq").values_list("pk", flat=True)[:2])
    Event.objects.filter(pk__in=first_two).update(created_at=long_ago)
    PendingStatus.objects.create(
        clinic=clinic, external_id="wamid.OLD", status="delivered", happened_at=long_ago, received_at=long_ago
    )
    Note.objects.create(clinic=clinic, conversation=older, content="Nota antiga", created_at=long_ago)
    return older


@pytest.fixture
def old_file(aged, clinic, settings):
    """A photo the patient sent in the old conversation, stored on disk."""
    from django.core.files.base import ContentFile

    message = aged.messages.get()
    attachment = MessageAttachment(message=message, file_name="raio-x.png", content_type="image/png", size=len(PNG))
    attachment.file.save("raio-x.png", ContentFile(PNG), save=True)
    return attachment.file.path


def test_purge_expired_deletes_what_retention_no_longer_allows_and_can_run_again(aged, clinic, client, capsys):
    recent = Message.objects.filter(created_at__gt=timezone.now() - timedelta(days=1)).count()
    call_command("purge_expired")
    out = capsys.readouterr().out
    assert (
        "would delete: 1 messages, 1 notes, 0 files, 1 conversations, 0 patients, 2 events, 1 pending statuses" in out
    )
    assert Message.objects.filter(conversation=aged).exists()

    call_command("purge_expired", "--yes", "--batch", "1")
    out = capsys.readouterr().out
    assert "messages: 1 deleted so far" in out and "deleted: 1 messages" in out
    assert not Conversation.objects.filter(pk=aged.pk).exists()
    assert Message.objects.count() == recent and not PendingStatus.objects.exists()
    kept = ["Sugestão: Maria pode vir às 15h", "Mãe da Maria ligou pedindo sigilo"]
    assert list(Note.objects.order_by("pk").values_list("content", flat=True)) == kept
    assert Event.objects.filter(type="conversation:deleted", conversation_id=aged.pk).exists()
    assert AuditEvent.objects.filter(action="retention.purged").count() == 1

    call_command("purge_expired", "--yes")  # again: nothing left to do, nothing recorded
    assert (
        "deleted: 0 messages, 0 notes, 0 files, 0 conversations, 0 patients, 0 events, 0 pending statuses"
        in capsys.readouterr().out
    )
    assert AuditEvent.objects.filter(action="retention.purged").count() == 1


def test_purge_deletes_the_old_files_from_storage_and_keeps_the_recent_ones(aged, old_file, clinic, capsys):
    import os

    recent_path = MessageAttachment.objects.get(file_name="receita.png").file.path
    call_command("purge_expired", "--yes")
    assert "1 files" in capsys.readouterr().out
    assert not os.path.exists(old_file) and not MessageAttachment.objects.filter(file_name="raio-x.png").exists()
    assert os.path.exists(recent_path), "a file retention still allows stays"


class Interrupted(io.StringIO):
    """The command's output, where Ctrl-C lands as the `stop_at`-th batch reports its progress."""

    def __init__(self, stop_at: int):
        super().__init__()
        self.batches = 0
        self.stop_at = stop_at

    def write(self, text: str) -> int:
        if "deleted so far" in text:
            self.batches += 1
            if self.batches == self.stop_at:
                raise KeyboardInterrupt
        return super().write(text)


@pytest.mark.parametrize("stop_at", [1, 2, 3, 4])
def test_a_purge_interrupted_anywhere_is_finished_by_running_it_again(aged, old_file, clinic, stop_at):
    """Stopped after its first, second… batch; whatever was done stays done and consistent, and the next
    run ends exactly where an uninterrupted one would have."""
    import os

    with pytest.raises(KeyboardInterrupt):
        call_command("purge_expired", "--yes", "--batch", "1", stdout=Interrupted(stop_at))
    gone = not Conversation.objects.filter(pk=aged.pk).exists()
    told = Event.objects.filter(type="conversation:deleted", conversation_id=aged.pk).exists()
    assert gone == told == (stop_at > 3), "a batch is all or nothing: deleted and told, or neither"
    assert not Message.objects.filter(conversation_id=aged.pk).exists(), "the first batch, done, stays done"

    call_command("purge_expired", "--yes", "--batch", "1", stdout=io.StringIO())
    assert not Conversation.objects.filter(pk=aged.pk).exists() and not os.path.exists(old_file)
    assert not PendingStatus.objects.exists() and not Note.objects.filter(content="Nota antiga").exists()
    assert not Message.objects.filter(created_at__lt=timezone.now() - timedelta(days=365)).exists()
    assert not Event.objects.filter(created_at__lt=timezone.now() - timedelta(days=365)).exists()


def test_retention_keeps_a_conversation_with_a_recent_clinical_action_and_drops_forgotten_patients(
    aged, clinic, capsys
):
    add_conversation_action(conversation=aged, action_type="appointment_created", action_data={"at": "amanhã"})
    long_ago = timezone.now() - timedelta(days=400)
    forgotten = receive_inbound_message(clinic=clinic, phone="5511911112222", content="Faz tempo").contact
    forgotten_thread = Conversation.objects.get(contact=forgotten)
    forgotten_thread.messages.update(created_at=long_ago)
    Conversation.objects.filter(pk=forgotten_thread.pk).update(updated_at=long_ago, last_message_at=long_ago)
    Contact.objects.filter(pk=forgotten.pk).update(updated_at=long_ago)
    call_command("purge_expired", "--yes")
    assert Conversation.objects.filter(pk=aged.pk).exists(), "booked yesterday: the conversation stays"
    assert not Contact.objects.filter(pk=forgotten.pk).exists(), "nothing left of them: the patient goes"
    assert Contact.objects.filter(pk=aged.contact_id).exists()
    assert "deleted: 2 messages, 1 notes, 0 files, 1 conversations, 1 patients" in capsys.readouterr().out


def test_a_retention_longer_than_the_calendar_keeps_everything(aged, clinic, capsys):
    clinic.retention_days = 10**9
    clinic.save(update_fields=["retention_days"])
    call_command("purge_expired", "--yes")
    assert Message.objects.filter(conversation=aged).exists()


def test_a_client_resuming_from_before_what_retention_kept_reloads(aged, clinic, member, jwt_client):
    call_command("purge_expired", "--yes")
    body = jwt_client(member).get("/api/events/?after=0").json()
    assert body["events"][0]["type"] == "resync"
