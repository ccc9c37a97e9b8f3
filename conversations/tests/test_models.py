"""The data model's invariants hold in the database itself, not only in Python."""

import uuid

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from conversations.models import Clinic, Contact, Conversation, Membership, Message, Role


@pytest.fixture
def contact(clinic):
    return Contact.objects.create(clinic=clinic, name="Maria Souza", phone="5511987654321")


@pytest.fixture
def conversation(clinic, contact):
    return Conversation.objects.create(clinic=clinic, contact=contact)


def make_message(conversation, **fields):
    defaults = {"direction": "inbound", "sender_type": "patient", "content": "Olá"}
    return Message.objects.create(clinic=conversation.clinic, conversation=conversation, **{**defaults, **fields})


def violates(create) -> bool:
    try:
        with transaction.atomic():
            create()
    except IntegrityError:
        return True
    return False


def test_clinic_timezone_is_validated_against_the_iana_database(db):
    clinic = Clinic(name="X", slug="x", timezone="America/Sao_Paulo")
    clinic.full_clean()
    clinic.timezone = "Brasil/Paulista"
    with pytest.raises(ValidationError, match="IANA"):
        clinic.full_clean()


def test_a_user_belongs_to_a_clinic_once(clinic, member):
    assert violates(lambda: Membership.objects.create(user=member, clinic=clinic, role=Role.ADMIN))


def test_a_user_may_belong_to_several_clinics(clinic, other_clinic, member):
    Membership.objects.create(user=member, clinic=other_clinic, role=Role.ADMIN)
    assert set(member.memberships.values_list("clinic_id", flat=True)) == {clinic.pk, other_clinic.pk}


def test_membership_role_is_checked_by_the_database(clinic, member, other_clinic):
    assert violates(lambda: Membership.objects.create(user=member, clinic=other_clinic, role="janitor"))


def test_contact_phone_is_unique_per_clinic_only(clinic, other_clinic, contact):
    assert violates(lambda: Contact.objects.create(clinic=clinic, phone=contact.phone))
    assert not violates(lambda: Contact.objects.create(clinic=other_clinic, phone=contact.phone))


@pytest.mark.parametrize("phone", ["+5511987654321", "11 98765-4321", "0511987654321", "123"])
def test_contact_phone_must_be_e164_digits(clinic, phone):
    assert violates(lambda: Contact.objects.create(clinic=clinic, phone=phone))


def test_one_unresolved_conversation_per_contact_and_channel(clinic, contact, conversation):
    assert violates(lambda: Conversation.objects.create(clinic=clinic, contact=contact, status="pending"))
    conversation.status = "resolved"
    conversation.save()
    assert not violates(lambda: Conversation.objects.create(clinic=clinic, contact=contact))


def test_external_id_is_unique_per_clinic_and_kept_as_a_string(clinic, other_clinic, conversation):
    huge = "5511965860124551150391104"
    make_message(conversation, external_id=huge)
    assert Message.objects.get(external_id=huge).external_id == huge
    assert violates(lambda: make_message(conversation, external_id=huge))
    other_contact = Contact.objects.create(clinic=other_clinic, phone="5511911112222")
    other_conversation = Conversation.objects.create(clinic=other_clinic, contact=other_contact)
    assert not violates(lambda: make_message(other_conversation, external_id=huge))


def test_messages_without_external_id_do_not_collide(conversation):
    make_message(conversation)
    assert not violates(lambda: make_message(conversation))


def test_client_id_is_unique_per_conversation(conversation):
    client_id = uuid.uuid4()
    make_message(conversation, direction="outbound", sender_type="professional", client_id=client_id)
    assert violates(
        lambda: make_message(conversation, direction="outbound", sender_type="professional", client_id=client_id)
    )


@pytest.mark.parametrize(
    "field,value",
    [("direction", "sideways"), ("sender_type", "robot"), ("message_type", "hologram"), ("status", "lost")],
)
def test_message_enumerations_are_checked_by_the_database(conversation, field, value):
    assert violates(lambda: make_message(conversation, **{field: value}))


def test_message_timeline_index_exists():
    index = next(i for i in Message._meta.indexes if i.name == "message_timeline")
    assert index.fields == ["conversation", "-created_at", "-id"]
