"""Two actions at once never deadlock on the clinic's seq: a row an action locks to change it does not
hold up another transaction's foreign-key check of that row, which PostgreSQL makes at commit, after that
transaction took the clinic's seq.

Each test holds one transaction open after it took the seq (as a staff member's read mark does before
its commit), runs the other action until it waits for the seq, then lets the first commit."""

import threading
import time
from datetime import UTC, datetime

import pytest
from django.db import connection, transaction

from conversations.actions import inbound_fast
from conversations.actions.inbound import receive_inbound_message
from conversations.actions.messages import mark_read, update_message_status
from conversations.actions.privacy import erase_contact
from conversations.models import Contact, Conversation, Direction, Message, MessageStatus, SenderType

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
PHONE = "5511987654321"


@pytest.fixture
def thread(clinic, member):
    patient = Contact.objects.create(clinic=clinic, phone=PHONE, whatsapp_id=PHONE, profile_name="Maria")
    conversation = Conversation.objects.create(clinic=clinic, contact=patient)
    Message.objects.create(
        clinic=clinic,
        conversation=conversation,
        direction=Direction.INBOUND,
        sender_type=SenderType.PATIENT,
        content="Oi",
        external_id="wamid.first",
        status=MessageStatus.DELIVERED,
    )
    return conversation


def waiting_for_a_lock(seconds: float = 10) -> None:
    """Until another backend of this database waits for a row lock (at most `seconds`)."""
    deadline = time.monotonic() + seconds
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
            )
            if cursor.fetchone()[0]:
                return
            time.sleep(0.01)
    raise AssertionError("the second action never waited for the first's lock")


def both_at_once(first, second) -> list[BaseException]:
    """`first()` in a transaction held open until `second()`, on another thread, waits for a lock."""
    errors: list[BaseException] = []
    started, go_on = threading.Event(), threading.Event()

    def hold_first() -> None:
        try:
            with transaction.atomic():
                first()
                started.set()
                go_on.wait(10)
        except BaseException as error:
            errors.append(error)
        finally:
            started.set()
            connection.close()

    def run_second() -> None:
        try:
            started.wait(10)
            second()
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=hold_first), threading.Thread(target=run_second)]
    for each in threads:
        each.start()
    try:
        waiting_for_a_lock()
    finally:
        go_on.set()
        for each in threads:
            each.join(30)
    return errors


def test_a_reply_s_status_and_a_read_mark_of_it_at_once_both_commit(thread, member):
    reply = Message.objects.create(
        clinic=thread.clinic,
        conversation=thread,
        direction=Direction.OUTBOUND,
        sender_type=SenderType.PROFESSIONAL,
        sender=member,
        content="Chego às 15h",
        status=MessageStatus.PENDING,
    )

    errors = both_at_once(
        lambda: mark_read(user=member, conversation=thread, message=reply),  # the staff's other screen
        # The worker, told by WhatsApp that the reply left:
        lambda: update_message_status(message=reply, status=MessageStatus.SENT, external_id="wamid.reply"),
    )

    assert errors == []
    reply.refresh_from_db()
    assert reply.status == MessageStatus.SENT
    assert thread.read_markers.get(user=member).last_read_message_id == reply.pk


def test_a_patient_s_message_and_a_read_mark_at_once_both_commit(thread, member):
    inbound_fast.forget_snapshots()
    latest = thread.messages.get()
    stored = []

    def patient_writes() -> None:
        inbound = inbound_fast.usual_inbound(
            clinic_id=thread.clinic_id,
            phone=PHONE,
            whatsapp_id=PHONE,
            profile_name="Maria",
            message_type="text",
            content="Posso ir às 16h?",
            metadata={},
            external_id="wamid.second",
            happened_at=datetime.now(UTC),
        )
        stored.append(inbound_fast.receive_usual_message(inbound))

    errors = both_at_once(lambda: mark_read(user=member, conversation=thread, message=latest), patient_writes)

    assert errors == []
    assert stored[0] is not None, "stored by the fast path"
    assert thread.messages.filter(content="Posso ir às 16h?").count() == 1


def test_a_patient_s_erasure_and_a_read_mark_at_once_both_commit(thread, member):
    latest = thread.messages.get()

    errors = both_at_once(
        lambda: mark_read(user=member, conversation=thread, message=latest),
        lambda: erase_contact(contact=thread.contact, actor=member),
    )

    assert errors == []
    assert Contact.objects.get(pk=thread.contact_id).status == Contact.Status.ERASED
    assert thread.read_markers.get(user=member).last_read_message_id == latest.pk


def test_a_patient_s_message_during_their_erasure_waits_and_goes_to_a_new_patient(thread, member):
    inbound_fast.forget_snapshots()
    stored = []

    def patient_writes() -> None:  # as the webhook stores it: the fast path, else the whole action
        fields = dict(phone=PHONE, whatsapp_id=PHONE, profile_name="Maria", content="Posso ir às 16h?")
        fields |= dict(external_id="wamid.second", metadata={}, happened_at=datetime.now(UTC))
        inbound = inbound_fast.usual_inbound(clinic_id=thread.clinic_id, message_type="text", **fields)
        stored.append(inbound_fast.receive_usual_message(inbound))
        with transaction.atomic():
            stored.append(receive_inbound_message(clinic=thread.clinic, **fields))

    errors = both_at_once(lambda: erase_contact(contact=thread.contact, actor=member), patient_writes)

    assert errors == []
    assert stored[0] is None, "the fast path saw the patient change while it waited"
    message = Message.objects.get(content="Posso ir às 16h?")
    assert message.conversation.contact_id != thread.contact_id
    assert message.conversation.contact.phone == PHONE
    assert Contact.objects.get(pk=thread.contact_id).status == Contact.Status.ERASED


def held_with_a_lock_awaited(first, then) -> tuple[list[BaseException], threading.Thread]:
    """`first()` in a transaction, then, once another backend waits for a lock, `then()` in the same
    transaction; on a thread of its own, started."""
    errors: list[BaseException] = []
    started = threading.Event()

    def run() -> None:
        try:
            with transaction.atomic():
                first()
                started.set()
                waiting_for_a_lock()
                then()
        except BaseException as error:
            errors.append(error)
        finally:
            started.set()
            connection.close()

    holder = threading.Thread(target=run)
    holder.start()
    started.wait(10)
    return errors, holder


def erase_on_a_thread(contact, member) -> tuple[list[BaseException], threading.Thread]:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            erase_contact(contact=contact, actor=member)
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    eraser = threading.Thread(target=run)
    eraser.start()
    return errors, eraser


def test_a_message_on_the_full_path_holding_the_patient_while_they_are_erased_is_erased_too(thread, member, caplog):
    patient = thread.contact

    def writes() -> None:
        receive_inbound_message(clinic=thread.clinic, phone=PHONE, content="Segredo clínico", external_id="wamid.x")

    held, holder = held_with_a_lock_awaited(
        lambda: Contact.objects.select_for_update(no_key=True).get(pk=patient.pk), writes
    )
    erasing, eraser = erase_on_a_thread(patient, member)
    holder.join(30)
    eraser.join(30)

    assert held == [] and erasing == []
    assert "taken again" not in caplog.text, "one order: no deadlock to recover from"
    assert not Message.objects.filter(content="Segredo clínico").exists(), "written first, then erased"
    assert Contact.objects.get(pk=patient.pk).status == Contact.Status.ERASED


def test_an_erasure_ended_by_a_deadlock_with_the_fast_path_s_lock_order_is_taken_again(thread, member, caplog):
    patient = thread.contact

    def share_the_patient() -> None:  # what the fast path's statement locks second
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT id FROM {Contact._meta.db_table} WHERE id = %s FOR SHARE", [patient.pk])

    def lock_the_conversation() -> None:  # what the fast path's statement locks first
        with connection.cursor() as cursor:  # the erasure's deadlock check fires first: it is the one ended
            cursor.execute("SET LOCAL deadlock_timeout = '20s'")
        Conversation.objects.select_for_update(no_key=True).get(pk=thread.pk)

    held, holder = held_with_a_lock_awaited(lock_the_conversation, share_the_patient)
    erasing, eraser = erase_on_a_thread(patient, member)
    holder.join(30)
    eraser.join(30)

    assert held == [] and erasing == []
    assert "met a deadlock; taken again" in caplog.text
    assert Contact.objects.get(pk=patient.pk).status == Contact.Status.ERASED
