"""The support admin: every model browsable and searchable, history read-only, secrets never shown."""

import pytest
from django.contrib import admin
from django.urls import reverse

from conversations.actions.demo import seed_demo
from conversations.actions.inbound import receive_inbound_message
from conversations.actions.support import delete_contact, save_clinic
from conversations.models import (
    AuditEvent,
    Clinic,
    Contact,
    Conversation,
    IntegrationToken,
    Membership,
    Message,
    ReadMarker,
    WhatsAppChannel,
)
from realtime.models import Event

SECRET_TOKEN = "EAAGm0PX4ZCpsBAKZBqZAqzVZCs1Q2" * 3
APP_SECRET = "f3c1a9e0b7d24c58a1e6c9d0b2a4e8f1"


@pytest.fixture
def support(django_user_model):
    return django_user_model.objects.create_superuser("suporte", "suporte@example.com", "senha-forte-123")


@pytest.fixture
def channel(clinic):
    return WhatsAppChannel.objects.create(
        clinic=clinic,
        phone_number_id="106540352242922",
        display_phone_number="+55 11 3000-1000",
        access_token=SECRET_TOKEN,
        app_secret=APP_SECRET,
        verify_token="verifica-isso-123",
    )


def admin_url(model, view="changelist", *args):
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def test_every_registered_model_lists_and_searches(client, support, channel):
    seed_demo(scale=1)
    client.force_login(support)
    for model, model_admin in admin.site._registry.items():
        response = client.get(admin_url(model))
        assert response.status_code == 200, model
        if model_admin.search_fields:
            assert client.get(admin_url(model), {"q": "Maria"}).status_code == 200, model


def test_messages_are_found_by_content_and_contacts_by_name_or_phone(client, support):
    seed_demo(scale=1)
    client.force_login(support)
    message = Message.objects.filter(content__icontains="Unimed").first()
    assert str(message.pk) in client.get(admin_url(Message), {"q": "Unimed"}).text
    contact = message.conversation.contact
    assert contact.name in client.get(admin_url(Contact), {"q": contact.phone}).text


def test_a_patient_without_a_phone_is_listed_and_found_by_username_or_user_id(client, support, clinic):
    receive_inbound_message(
        clinic=clinic,
        whatsapp_user_id="BR.13491208655302741918",
        whatsapp_username="realsheenanelson",
        profile_name="Sheena Nelson",
        content="Oi",
    )
    receive_inbound_message(clinic=clinic, phone="5511911110001", profile_name="Outra Pessoa", content="Oi")
    client.force_login(support)
    for q in ("realsheenanelson", "BR.13491208655302741918", "Sheena"):
        page = client.get(admin_url(Contact), {"q": q}).text
        assert "Sheena Nelson" in page and "sem telefone" in page and "Outra Pessoa" not in page, q
    assert "+None" not in page


@pytest.mark.parametrize("model", [Message, Event])
def test_history_is_read_only(client, support, model, clinic):
    receive_inbound_message(clinic=clinic, phone="5511987654321", content="Oi")
    client.force_login(support)
    obj = model.objects.first()
    assert client.get(admin_url(model, "add")).status_code == 403
    page = client.get(admin_url(model, "change", obj.pk))
    assert page.status_code == 200 and 'name="_save"' not in page.text
    assert client.post(admin_url(model, "delete", obj.pk), {"post": "yes"}).status_code == 403
    assert model.objects.filter(pk=obj.pk).exists()


def test_channel_secrets_are_never_displayed(client, support, channel):
    client.force_login(support)
    for page in (client.get(admin_url(WhatsAppChannel)), client.get(admin_url(WhatsAppChannel, "change", channel.pk))):
        assert page.status_code == 200
        assert SECRET_TOKEN not in page.text and APP_SECRET not in page.text and "verifica-isso-123" not in page.text
    assert "••••••" + APP_SECRET[-4:] in client.get(admin_url(WhatsAppChannel)).text


def test_saving_a_channel_with_blank_secrets_keeps_them(client, support, channel, clinic):
    client.force_login(support)
    response = client.post(
        admin_url(WhatsAppChannel, "change", channel.pk),
        {
            "clinic": clinic.pk,
            "phone_number_id": channel.phone_number_id,
            "display_phone_number": "+55 11 3000-2000",
            "access_token": "",
            "app_secret": "",
            "verify_token": "",
        },
    )
    assert response.status_code == 302
    channel.refresh_from_db()
    assert (channel.display_phone_number, channel.access_token, channel.app_secret) == (
        "+55 11 3000-2000",
        SECRET_TOKEN,
        APP_SECRET,
    )


def test_a_new_integration_token_is_shown_once_and_only_its_hash_is_kept(client, support, clinic):
    client.force_login(support)
    response = client.post(admin_url(IntegrationToken, "add"), {"clinic": clinic.pk, "name": "n8n produção"})
    token = IntegrationToken.objects.get()
    shown = response.context["raw"]
    assert shown.startswith("tmk_") and IntegrationToken.hash_token(shown) == token.token_hash
    assert response.status_code == 200 and shown in response.text and "no-store" in response["Cache-Control"]
    assert all(shown not in morsel.value for morsel in response.cookies.values()), "never in a cookie"
    assert shown not in client.get(admin_url(IntegrationToken)).text
    assert shown not in client.get(admin_url(IntegrationToken, "change", token.pk)).text


def test_creating_and_revoking_an_integration_token_is_audited(client, support, clinic):
    client.force_login(support)
    client.post(admin_url(IntegrationToken, "add"), {"clinic": clinic.pk, "name": "n8n produção"})
    token = IntegrationToken.objects.get()
    revoke = {"action": "revoke_tokens", "_selected_action": [token.pk]}
    client.post(admin_url(IntegrationToken), revoke)
    client.post(admin_url(IntegrationToken), revoke)  # again: nothing more to record
    audits = list(AuditEvent.objects.filter(object_type="integrationtoken").order_by("at"))
    assert [(a.action, a.actor, a.clinic, a.detail) for a in audits] == [
        ("integration_token.created", support, clinic, {"name": "n8n produção", "prefix": token.prefix}),
        ("integration_token.revoked", support, clinic, {"name": "n8n produção", "prefix": token.prefix}),
    ]
    assert audits[0].ip == "127.0.0.1"


# --- Support's changes go through actions -------------------------------------------------------------


def test_a_secret_changed_in_the_admin_is_audited_by_name_never_by_value(client, support, channel, clinic):
    client.force_login(support)
    form = {"clinic": clinic.pk, "phone_number_id": channel.phone_number_id, "display_phone_number": "+55 11 3000-1000"}
    client.post(admin_url(WhatsAppChannel, "change", channel.pk), {**form, "app_secret": "novo-segredo-" + "x" * 20})
    client.post(admin_url(WhatsAppChannel, "change", channel.pk), form)  # blank secrets: nothing changes
    audit = AuditEvent.objects.get(object_type="whatsappchannel")
    assert (audit.action, audit.actor, audit.clinic, audit.detail) == (
        "whatsapp_channel.changed",
        support,
        clinic,
        {"fields": ["app_secret"]},
    )
    assert "novo-segredo" not in str(audit.detail)


def test_a_contact_renamed_in_the_admin_reaches_open_screens(client, support, clinic):
    conversation = receive_inbound_message(clinic=clinic, phone="5511987654321", content="Oi").conversation
    contact = conversation.contact
    client.force_login(support)
    response = client.post(
        admin_url(Contact, "change", contact.pk),
        {"clinic": clinic.pk, "name": "Maria Aparecida", "phone": contact.phone, "email": "", "status": contact.status},
    )
    assert response.status_code == 302
    event = Event.objects.filter(clinic=clinic).latest("seq")
    assert event.type == "conversation:updated" and event.conversation_id == conversation.pk
    assert event.data["changed"] == ["contact"] and event.data["conversation"]["contact"]["name"] == "Maria Aparecida"


@pytest.mark.django_db(transaction=True)  # the database's check of a conversation's clinic runs at commit
def test_a_patient_belongs_to_their_clinic_for_ever(client, support, clinic, other_clinic, jwt_client, make_member):
    """Moved in the admin, clinic B's next message from that phone would be written into clinic A's
    conversation, and B's admin could export A's history: the admin, the action and the database refuse."""
    from django.db import IntegrityError, transaction

    from conversations.actions.privacy import export_contact
    from conversations.actions.support import change_contact
    from conversations.errors import InvalidInput

    maria = receive_inbound_message(clinic=clinic, phone="5511987654321", content="Sigilo da clínica A").contact
    client.force_login(support)
    form = {"clinic": other_clinic.pk, "name": "Maria", "phone": maria.phone, "email": "", "status": maria.status}
    assert client.post(admin_url(Contact, "change", maria.pk), form).status_code == 302
    assert Contact.objects.get(pk=maria.pk).clinic_id == clinic.pk, "the admin shows the clinic, never moves it"
    maria.clinic_id = other_clinic.pk
    with pytest.raises(InvalidInput):
        change_contact(maria, actor=support)
    with pytest.raises(IntegrityError, match="for ever"), transaction.atomic():
        Contact.objects.filter(pk=maria.pk).update(clinic=other_clinic)
    with pytest.raises(IntegrityError, match="same_clinic|patient's clinic"), transaction.atomic():
        Conversation.objects.create(clinic=other_clinic, contact_id=maria.pk, status="resolved")

    theirs = receive_inbound_message(clinic=other_clinic, phone="5511987654321", content="Oi, clínica B")
    assert theirs.contact.pk != maria.pk and theirs.conversation.clinic_id == other_clinic.pk
    archive = export_contact(contact=theirs.contact, actor=make_member(other_clinic, "admin"))
    import zipfile

    assert b"Sigilo da" not in zipfile.ZipFile(archive).read("patient.json")


def test_a_support_edit_never_writes_back_a_seq_the_application_moved(support, clinic):
    stale = Clinic.objects.get(pk=clinic.pk)  # the admin loaded the clinic…
    receive_inbound_message(clinic=clinic, phone="5511987654321", content="Oi")  # …then events were published
    stale.name = "Clínica Aurora Centro"
    assert save_clinic(stale, actor=support, editable=["name", "slug", "timezone"]) == ["name"]
    clinic.refresh_from_db()
    assert (clinic.name, clinic.event_seq) == ("Clínica Aurora Centro", 2)


def test_a_membership_removed_in_the_admin_is_audited_without_personal_data(client, support, clinic, member):
    membership = Membership.objects.get(user=member)
    client.force_login(support)
    response = client.post(admin_url(Membership, "delete", membership.pk), {"post": "yes"})
    assert response.status_code == 302 and not Membership.objects.filter(pk=membership.pk).exists()
    audit = AuditEvent.objects.get(action="membership.removed")
    assert (audit.object_type, audit.object_id, audit.detail) == ("membership", str(membership.pk), {})


def test_deleting_a_patient_tells_open_screens_each_of_their_conversations_is_gone(
    client, support, clinic, other_clinic
):
    first = receive_inbound_message(clinic=clinic, phone="5511987650001", content="Oi").conversation
    second = Conversation.objects.create(clinic=clinic, contact=first.contact, status="resolved")  # an older one
    elsewhere = receive_inbound_message(clinic=other_clinic, phone="5511987650001", content="Outra clínica")
    assert first.pk != second.pk and first.contact_id == second.contact_id
    client.force_login(support)
    refused = client.post(admin_url(Contact, "delete", first.contact_id), {"post": "yes"})
    assert refused.status_code == 403, "the admin never deletes history (conversations) along with a patient"
    delete_contact(first.contact, actor=support, ip="10.0.0.1")  # the action any path of deletion takes
    assert not Contact.objects.filter(pk=first.contact_id).exists()
    gone = Event.objects.filter(type="conversation:deleted").order_by("seq")
    assert [(e.clinic_id, e.conversation_id, e.data) for e in gone] == [
        (clinic.pk, first.pk, {"conversation_id": first.pk}),
        (clinic.pk, second.pk, {"conversation_id": second.pk}),
    ]
    assert Contact.objects.filter(pk=elsewhere.conversation.contact_id).exists()


def test_each_kind_of_support_change_is_its_own_named_action_in_the_trail(client, support, clinic, member):
    conversation = receive_inbound_message(clinic=clinic, phone="5511987654321", content="Oi").conversation
    client.force_login(support)
    contact = conversation.contact
    client.post(
        admin_url(Contact, "change", contact.pk),
        {"clinic": clinic.pk, "name": "Maria Aparecida", "phone": contact.phone, "email": "", "status": "active"},
    )
    client.post(
        admin_url(Clinic, "change", clinic.pk),
        {
            "name": "Clínica Aurora Centro",
            "slug": clinic.slug,
            "timezone": clinic.timezone,
            "retention_days": 3650,
            "memberships-TOTAL_FORMS": 0,
            "memberships-INITIAL_FORMS": 0,
        },
    )
    Membership.objects.filter(user=member).delete()
    client.post(admin_url(Membership, "add"), {"user": member.pk, "clinic": clinic.pk, "role": "admin"})
    trail = {(a.action, a.object_type): a.detail for a in AuditEvent.objects.exclude(action="conversation.read")}
    assert trail[("contact.changed", "contact")] == {"fields": ["name"]}
    assert trail[("clinic.changed", "clinic")] == {"fields": ["name", "retention_days"]}
    assert ("membership.created", "membership") in trail
    assert not any(action.startswith("support.") for action, _ in trail)


# --- Every change the admin can make is in the trail ------------------------------------------------------


def test_every_model_the_admin_can_change_goes_through_a_named_action(support, rf):
    """A new admin page that can add, change or delete would escape the trail: it must be read-only, or
    one of these, whose saves and deletions are named support actions (each tested in this file)."""
    from conversations.admin import SupportActions

    request = rf.post("/admin/")  # a write: some pages allow GET only (simplejwt's outstanding tokens)
    request.user = support
    writable = set()
    for model, model_admin in admin.site._registry.items():
        can = (
            model_admin.has_add_permission(request),
            model_admin.has_change_permission(request, None) and model is not Conversation,  # its bulk resolve
            model_admin.has_delete_permission(request, None),
        )
        if any(can):
            writable.add(model._meta.label)
            assert isinstance(model_admin, SupportActions), model
    assert writable == {
        "conversations.Clinic",
        "conversations.Membership",
        "conversations.Contact",
        "conversations.WhatsAppChannel",
        "conversations.IntegrationToken",
        "auth.User",
        "auth.Group",
    }


def test_changing_a_users_access_in_the_admin_is_audited_by_field_never_by_value(client, support, member):
    from django.contrib.auth.models import Group, Permission

    group = Group.objects.create(name="Recepção")
    client.force_login(support)
    page = client.get(admin_url(type(member), "change", member.pk))
    form = {
        field: value
        for field, value in page.context["adminform"].form.initial.items()
        if field in ("username", "first_name", "last_name", "email")
    }
    response = client.post(
        admin_url(type(member), "change", member.pk),
        {
            **form,
            "is_active": "",  # deactivated…
            "is_staff": "on",
            "is_superuser": "on",  # …and made a superuser, in one save
            "groups": [group.pk],
        },
        REMOTE_ADDR="10.0.0.7",
    )
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    member.refresh_from_db()
    assert (member.is_active, member.is_superuser) == (False, True)
    changes = AuditEvent.objects.filter(object_type="user", object_id=str(member.pk)).order_by("pk")
    assert [(a.action, a.actor, a.clinic_id, a.ip) for a in changes] == [
        ("user.changed", support, None, "10.0.0.7"),
        ("user.changed", support, None, "10.0.0.7"),
    ]
    assert [a.detail for a in changes] == [
        {"fields": ["is_active", "is_staff", "is_superuser"]},
        {"fields": ["groups"]},
    ]

    client.post(
        admin_url(Group, "change", group.pk),
        {"name": "Recepção", "permissions": [Permission.objects.get(codename="view_contact").pk]},
    )
    assert AuditEvent.objects.get(object_type="group", action="group.changed").detail == {"fields": ["permissions"]}


def test_a_password_set_in_the_admin_is_audited_and_never_recorded(client, support, member):
    client.force_login(support)
    response = client.post(
        reverse("admin:auth_user_password_change", args=(member.pk,)),
        {"usable_password": "true", "password1": "nova-senha-forte-987", "password2": "nova-senha-forte-987"},
    )
    assert response.status_code == 302
    member.refresh_from_db()
    assert member.check_password("nova-senha-forte-987")
    audit = AuditEvent.objects.get(object_type="user", object_id=str(member.pk))
    assert (audit.action, audit.actor, audit.detail) == ("user.password_set", support, {})

    mismatch = client.post(
        reverse("admin:auth_user_password_change", args=(member.pk,)),
        {"usable_password": "true", "password1": "outra-senha-1234", "password2": "nao-confere-1234"},
    )
    assert mismatch.status_code == 200 and AuditEvent.objects.filter(object_type="user").count() == 1
    member.refresh_from_db()
    assert member.check_password("nova-senha-forte-987")


def test_creating_and_deleting_a_user_or_group_in_the_admin_is_audited(client, support):
    from django.contrib.auth.models import Group, User

    client.force_login(support)
    client.post(
        admin_url(User, "add"),
        {
            "username": "novo.atendente",
            "usable_password": "true",
            "password1": "senha-Forte-123",
            "password2": "senha-Forte-123",
        },
    )
    user = User.objects.get(username="novo.atendente")
    client.post(admin_url(Group, "add"), {"name": "Financeiro"})
    group = Group.objects.get(name="Financeiro")
    client.post(admin_url(User, "delete", user.pk), {"post": "yes"})
    client.post(admin_url(Group, "delete", group.pk), {"post": "yes"})
    assert not User.objects.filter(pk=user.pk).exists() and not Group.objects.filter(pk=group.pk).exists()
    trail = [(a.action, a.object_id, a.actor) for a in AuditEvent.objects.order_by("pk")]
    assert trail == [
        ("user.created", str(user.pk), support),
        ("group.created", str(group.pk), support),
        ("user.deleted", str(user.pk), support),
        ("group.deleted", str(group.pk), support),
    ]
    assert "senha" not in str([a.detail for a in AuditEvent.objects.all()])
    assert "instalação" in client.get(admin_url(AuditEvent)).text  # the list names these as no clinic's


def test_a_person_who_read_conversations_can_be_deleted_with_what_they_had_read(
    client, support, clinic, member, jwt_client
):
    """What someone had read is their own state, not history: it goes with them, and the admin does not
    refuse the deletion for its read-only page. The trail keeps the deletion."""
    from django.contrib.auth.models import User

    conversation = receive_inbound_message(clinic=clinic, phone="5511987654321", content="Oi").conversation
    newest = conversation.messages.latest("pk")
    read = jwt_client(member).post(
        f"/api/conversations/{conversation.pk}/read/", {"message_id": newest.pk}, format="json"
    )
    assert read.status_code in (200, 204) and ReadMarker.objects.filter(user=member).exists()
    client.force_login(support)
    assert "Marcadores de leitura: 1" in client.get(admin_url(User, "delete", member.pk)).text

    answer = client.post(admin_url(User, "delete", member.pk), {"post": "yes"})

    assert answer.status_code == 302
    assert not User.objects.filter(pk=member.pk).exists() and not ReadMarker.objects.exists()
    assert AuditEvent.objects.filter(action="user.deleted", object_id=str(member.pk), actor=support).exists()


def test_resolving_conversations_from_the_admin_records_who_and_from_where(client, support, clinic):
    conversation = receive_inbound_message(clinic=clinic, phone="5511987654321", content="Oi").conversation
    client.force_login(support)
    client.post(
        admin_url(Conversation),
        {"action": "resolve_conversations", "_selected_action": [conversation.pk]},
        REMOTE_ADDR="10.0.0.9",
    )
    conversation.refresh_from_db()
    assert conversation.status == "resolved"
    audit = AuditEvent.objects.get(action="conversation.status")
    assert (audit.actor, audit.actor_name, audit.ip, audit.clinic) == (support, "suporte", "10.0.0.9", clinic)
    # The reports count the resolution, as no staff member's: support is not the clinic's team.
    from conversations.models import ActivityFact, ConversationFact

    fact = ConversationFact.objects.get(conversation_id=conversation.pk)
    assert fact.resolved_at is not None and fact.resolved_by_id is None
    assert ActivityFact.objects.get(resolved=1).user_id == 0


def test_revoked_refresh_tokens_cannot_be_added_or_taken_back_in_the_admin(client, support, member):
    from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
    from rest_framework_simplejwt.tokens import RefreshToken

    RefreshToken.for_user(member).blacklist()
    revoked = BlacklistedToken.objects.get()
    client.force_login(support)
    assert client.get(admin_url(BlacklistedToken)).status_code == 200
    assert client.get(admin_url(BlacklistedToken, "add")).status_code == 403
    assert client.post(admin_url(BlacklistedToken, "delete", revoked.pk), {"post": "yes"}).status_code == 403
    assert client.post(admin_url(OutstandingToken, "delete", revoked.token_id), {"post": "yes"}).status_code == 403
    assert BlacklistedToken.objects.filter(pk=revoked.pk).exists()


def test_clinic_staff_even_clinic_admins_are_kept_out_of_the_admin(client, outsider):
    client.force_login(outsider)  # an admin of their clinic, not of the installation
    response = client.get("/admin/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert client.get(admin_url(Contact)).status_code == 302


def test_renaming_a_user_names_only_that_field_and_keeps_their_last_login(client, support, member):
    from datetime import timedelta

    from django.utils import timezone

    logged_in = timezone.now() - timedelta(minutes=3, microseconds=123)
    type(member).objects.filter(pk=member.pk).update(last_login=logged_in)
    client.force_login(support)
    form = {"username": member.username, "first_name": "Júlia Maria", "last_name": member.last_name}
    response = client.post(admin_url(type(member), "change", member.pk), {**form, "is_active": "on"})
    assert response.status_code == 302
    member.refresh_from_db()
    assert member.first_name == "Júlia Maria" and member.last_login == logged_in, "never written back"
    audit = AuditEvent.objects.get(object_type="user", object_id=str(member.pk))
    assert audit.detail == {"fields": ["first_name"]}


def test_supports_own_password_change_is_audited_too(client, support):
    client.force_login(support)
    response = client.post(
        "/admin/password_change/",
        {"old_password": "senha-forte-123", "new_password1": "Outra-Senha-987", "new_password2": "Outra-Senha-987"},
    )
    assert response.status_code == 302 and response["Location"] == reverse("admin:password_change_done")
    support.refresh_from_db()
    assert support.check_password("Outra-Senha-987")
    audit = AuditEvent.objects.get(object_type="user")
    assert (audit.action, audit.actor, audit.object_id, audit.detail) == (
        "user.password_set",
        support,
        str(support.pk),
        {},
    )
    assert client.get("/admin/").status_code == 200, "still signed in"
    wrong = client.post(
        "/admin/password_change/",
        {"old_password": "errada", "new_password1": "Mais-Uma-987", "new_password2": "Mais-Uma-987"},
    )
    assert wrong.status_code == 200 and AuditEvent.objects.filter(object_type="user").count() == 1
