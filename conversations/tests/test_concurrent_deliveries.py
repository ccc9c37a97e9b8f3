"""Concurrent deliveries for one patient (an album, Meta's retries) never duplicate anything."""

import threading

import pytest
from django.db import connection

from conversations.actions.inbound import receive_inbound_message
from conversations.models import Contact, Conversation, Message
from realtime.models import Event

DELIVERIES = 6


PHONE = {"phone": "5511987654321"}


def deliver_at_once(clinic, external_ids: list[str], identities: list[dict] | None = None) -> list:
    barrier = threading.Barrier(len(external_ids))
    results, errors = [], []
    identities = identities or [PHONE] * len(external_ids)

    def deliver(external_id: str, identity: dict):
        try:
            barrier.wait(timeout=10)
            results.append(
                receive_inbound_message(
                    clinic=clinic, **identity, contact_name="Maria", content="foto", external_id=external_id
                )
            )
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver, args=pair) for pair in zip(external_ids, identities, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors, errors
    return results


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_album_from_a_new_patient_makes_one_contact_and_one_conversation(clinic):
    results = deliver_at_once(clinic, [f"wamid.album-{n}" for n in range(DELIVERIES)])

    assert len(results) == DELIVERIES and all(r.created for r in results)
    assert Contact.objects.count() == 1
    assert Conversation.objects.count() == 1
    assert Message.objects.count() == DELIVERIES
    assert Event.objects.filter(type="conversation:new").count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_same_delivery_retried_concurrently_is_stored_once(clinic):
    results = deliver_at_once(clinic, ["wamid.same"] * DELIVERIES)

    assert sum(r.created for r in results) == 1
    assert len({r.message.pk for r in results}) == 1
    assert Message.objects.count() == 1
    assert Event.objects.filter(type="message:new").count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_new_patient_writing_by_phone_and_by_user_id_at_once_is_one_patient(clinic):
    """Deliveries of one new patient race, some carrying the phone and the id, some the id alone."""
    both = {"phone": "5511987654321", "whatsapp_user_id": "BR.13491208655302741918"}
    only_id = {"whatsapp_user_id": "BR.13491208655302741918"}
    identities = [both if n % 2 else only_id for n in range(DELIVERIES)]
    results = deliver_at_once(clinic, [f"wamid.mixed-{n}" for n in range(DELIVERIES)], identities)

    assert len(results) == DELIVERIES
    contact = Contact.objects.get()
    assert (contact.phone, contact.whatsapp_user_id) == ("5511987654321", "BR.13491208655302741918")
    assert Conversation.objects.count() == 1 and Message.objects.count() == DELIVERIES


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_number_change_notice_delivered_twice_at_once_is_stored_once(clinic):
    from conversations.actions.inbound import record_identity_change

    receive_inbound_message(clinic=clinic, phone="5511987654321", content="Oi")
    barrier = threading.Barrier(DELIVERIES)
    results, errors = [], []

    def deliver():
        try:
            barrier.wait(timeout=10)
            results.append(
                record_identity_change(
                    clinic=clinic,
                    kind="user_changed_number",
                    text="mudou de número",
                    external_id="wamid.sys-twice",
                    old_phone="5511987654321",
                    new_phone="5511912345678",
                )
            )
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver) for _ in range(DELIVERIES)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors, errors
    assert sum(r.created for r in results) == 1
    assert Message.objects.filter(external_id="wamid.sys-twice").count() == 1
    assert Contact.objects.get().phone == "5511912345678"
