"""Staff correct a patient's record — the clinic's name for them, e-mail, observations — through the API
and the patient panel: each change an action, live on every screen, audited by field name; WhatsApp's
profile name stays beside the clinic's and never overwrites it."""

import pytest

from conversations.actions.inbound import receive_inbound_message
from conversations.models import AuditEvent, Contact
from realtime.models import Event


@pytest.fixture
def maria(clinic):
    return receive_inbound_message(clinic=clinic, phone="5511987654321", profile_name="Mari ✨", content="Oi")


def test_staff_correct_the_record_and_every_screen_is_told(jwt_client, member, maria):
    api = jwt_client(member)
    url = f"/api/contacts/{maria.contact.pk}/"
    answer = api.patch(
        url, {"name": "Maria Souza", "email": "maria@example.com", "notes": "Prefere à tarde"}, format="json"
    )
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert (body["name"], body["profile_name"], body["email"], body["notes"]) == (
        "Maria Souza",
        "Mari ✨",
        "maria@example.com",
        "Prefere à tarde",
    )
    told = Event.objects.filter(type="conversation:updated").latest("seq")
    assert told.data["changed"] == ["contact"] and told.data["conversation"]["contact"]["name"] == "Maria Souza"
    audit = AuditEvent.objects.get(action="contact.corrected")
    assert audit.detail == {"fields": ["email", "name", "notes"]} and audit.actor == member
    assert "Maria Souza" not in str(audit.detail) and "Prefere" not in str(audit.detail), "names, never values"

    receive_inbound_message(clinic=maria.contact.clinic, phone="5511987654321", profile_name="Mari 2", content="Oi")
    contact = Contact.objects.get()
    assert (contact.name, contact.profile_name) == ("Maria Souza", "Mari 2"), "WhatsApp's name never overwrites"


@pytest.mark.parametrize(
    "body,field",
    [
        ({"email": "não-é-email"}, "email"),
        ({"name": "x" * 201}, "name"),
        ({"notes": 5}, "notes"),
        ({"phone": "5511999999999"}, "phone"),  # identifiers are WhatsApp's, not staff's to type
        ({}, "name"),
    ],
)
def test_bad_corrections_are_400s_naming_the_field_and_change_nothing(jwt_client, member, maria, body, field):
    answer = jwt_client(member).patch(f"/api/contacts/{maria.contact.pk}/", body, format="json")
    assert answer.status_code == 400 and answer.json()["field"] == field
    assert not AuditEvent.objects.filter(action="contact.corrected").exists()


def test_another_clinics_patient_cannot_be_corrected(jwt_client, outsider, maria):
    answer = jwt_client(outsider).patch(f"/api/contacts/{maria.contact.pk}/", {"name": "Outro"}, format="json")
    assert answer.status_code == 404 and Contact.objects.get().name == ""


def test_the_patient_panel_corrects_the_record_without_scripts(client, member, maria):
    client.force_login(member)
    client.get("/inbox/")
    page = client.get(f"/inbox/{maria.conversation.pk}/").text
    assert "Corrigir cadastro" in page and "No WhatsApp: Mari ✨" in page
    posted = client.post(
        f"/inbox/{maria.conversation.pk}/patient/", {"name": "Maria Souza", "email": "", "notes": "Alergia a látex"}
    )
    assert posted.status_code == 302
    page = client.get(f"/inbox/{maria.conversation.pk}/").text
    assert "Maria Souza" in page and "Alergia a látex" in page


def test_a_stale_panel_sends_only_what_was_changed_there(client, member, make_member, maria, jwt_client):
    """The form was rendered before a colleague corrected the e-mail: saving a new name keeps their e-mail."""
    client.force_login(member)
    client.get("/inbox/")
    assert 'name="was_email" value=""' in client.get(f"/inbox/{maria.conversation.pk}/").text
    colleague = make_member(maria.contact.clinic)
    jwt_client(colleague).patch(f"/api/contacts/{maria.contact.pk}/", {"email": "maria@example.com"}, format="json")
    stale = {"name": "Maria Souza", "email": "", "notes": "", "was_name": "", "was_email": "", "was_notes": ""}
    client.post(f"/inbox/{maria.conversation.pk}/patient/", stale)
    contact = Contact.objects.get()
    assert (contact.name, contact.email) == ("Maria Souza", "maria@example.com")
    assert AuditEvent.objects.filter(action="contact.corrected").latest("at").detail == {"fields": ["name"]}
