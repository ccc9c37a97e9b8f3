"""publish(): the event log takes a gap-free seq in the caller's transaction and broadcasts only after commit."""

import json

import pytest
from channels.db import database_sync_to_async
from django.db import transaction

from conversations.actions.inbound import receive_inbound_message
from realtime.log import DURABLE_TYPES, frame_of, publish
from realtime.models import Event
from realtime.tests.test_consumer import as_member, frame


def test_publish_outside_a_transaction_is_refused(clinic):
    # pytest-django wraps each test in a transaction; leave it to prove the guard.
    with pytest.raises(RuntimeError, match="inside the transaction"):
        transaction.get_connection().in_atomic_block = False
        try:
            publish(clinic.pk, "message:new", {})
        finally:
            transaction.get_connection().in_atomic_block = True


def test_ephemeral_or_unknown_types_are_not_logged(clinic):
    for kind in ("conversation:typing", "user:status", "message:deleted"):
        with pytest.raises(ValueError, match="durable"), transaction.atomic():
            publish(clinic.pk, kind, {})
    assert not Event.objects.exists()


def test_seq_counts_per_clinic(clinic, other_clinic):
    with transaction.atomic():
        a1 = publish(clinic.pk, "message:new", {"n": 1})
        b1 = publish(other_clinic.pk, "message:new", {"n": 1})
        a2 = publish(clinic.pk, "message:new", {"n": 2})
    assert (a1.seq, a2.seq, b1.seq) == (1, 2, 1)
    clinic.refresh_from_db()
    assert clinic.event_seq == 2


def test_the_frame_is_rendered_once_with_the_protocol_shape(clinic):
    with transaction.atomic():
        event = publish(clinic.pk, "message:status", {"message_id": 9, "status": "read"}, conversation_id=55)
    rendered = json.loads(frame_of(Event.objects.get(pk=event.pk)))
    assert (
        rendered
        == json.loads(frame_of(event))
        == {
            "type": "message:status",
            "seq": 1,
            "conversation_id": 55,
            "data": {"message_id": 9, "status": "read"},
            "at": event.created_at.isoformat(),
        }
    )


def test_every_durable_type_is_accepted(clinic):
    with transaction.atomic():
        for kind in sorted(DURABLE_TYPES):
            publish(clinic.pk, kind, {})
    assert Event.objects.count() == len(DURABLE_TYPES)


def test_broadcast_happens_on_commit_only(clinic, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        receive_inbound_message(clinic=clinic, phone="5511987654321", content="Oi")
    broadcasts = [cb for cb in callbacks if cb.__module__ == "realtime.log"]
    assert len(broadcasts) == 2  # conversation:new and message:new, each waiting for the commit


@pytest.mark.django_db(transaction=True)
async def test_a_rolled_back_action_broadcasts_and_logs_nothing(clinic, member):
    ws = await as_member(member, clinic)

    def rolled_back():
        with pytest.raises(RuntimeError), transaction.atomic():
            receive_inbound_message(clinic=clinic, phone="5511987654321", content="desfeita", external_id="gone")
            raise RuntimeError("the caller failed after the action")

    await database_sync_to_async(rolled_back)()
    await database_sync_to_async(receive_inbound_message)(
        clinic=clinic, phone="5511987654321", content="mantida", external_id="kept"
    )

    first, second = await frame(ws, durable_only=True), await frame(ws, durable_only=True)
    assert (first["type"], first["seq"]) == ("conversation:new", 1)
    assert (second["type"], second["seq"]) == ("message:new", 2)
    assert second["data"]["message"]["content"] == "mantida"
    contents = await database_sync_to_async(
        lambda: [e.data.get("message", {}).get("content") for e in Event.objects.all()]
    )()
    assert "desfeita" not in contents and len(contents) == 2
    await ws.disconnect()
