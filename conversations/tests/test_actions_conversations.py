"""The conversation actions: status, assignment and timeline actions."""

import pytest

from conversations.actions.conversations import add_conversation_action, assign_conversation, set_conversation_status
from conversations.actions.inbound import receive_inbound_message
from conversations.errors import InvalidInput, NotAMember
from conversations.models import Conversation, ConversationAction, Role
from realtime.models import Event


@pytest.fixture
def conversation(clinic):
    return receive_inbound_message(clinic=clinic, phone="5511987654321", content="Oi", external_id="w1").conversation


def latest_event():
    return Event.objects.latest("seq")


def test_status_change_is_saved_audited_and_published(conversation, member):
    updated, changed = set_conversation_status(conversation=conversation, status="resolved", actor=member)
    assert changed and Conversation.objects.get(pk=conversation.pk).status == "resolved"
    event = latest_event()
    assert event.type == "conversation:updated" and event.data["changed"] == ["status"]
    assert event.data["conversation"]["status"] == "resolved"
    audit = conversation.clinic.audit_events.get(action="conversation.status")
    assert audit.actor == member and audit.detail == {"from": "open", "to": "resolved"}


def test_setting_the_same_status_changes_nothing(conversation, member):
    seq = latest_event().seq
    assert set_conversation_status(conversation=conversation, status="open", actor=member)[1] is False
    assert latest_event().seq == seq


def test_an_unknown_status_is_refused(conversation, member):
    with pytest.raises(InvalidInput) as refused:
        set_conversation_status(conversation=conversation, status="archived", actor=member)
    assert refused.value.field == "status"


def test_reopening_is_refused_while_the_contact_has_another_open_thread(clinic, conversation, member):
    set_conversation_status(conversation=conversation, status="resolved", actor=member)
    newer = Conversation.objects.create(clinic=clinic, contact=conversation.contact)
    with pytest.raises(InvalidInput):
        set_conversation_status(conversation=conversation, status="open", actor=member)
    assert Conversation.objects.get(pk=conversation.pk).status == "resolved" and newer.status == "open"


def test_staff_of_another_clinic_cannot_change_status(conversation, outsider):
    with pytest.raises(NotAMember):
        set_conversation_status(conversation=conversation, status="resolved", actor=outsider)
    assert Conversation.objects.get(pk=conversation.pk).status == "open"


def test_assigning_to_a_member_publishes_and_unassigning_works(clinic, conversation, member, make_member):
    doctor = make_member(clinic, Role.PROFESSIONAL, first_name="Paulo")
    updated, changed = assign_conversation(conversation=conversation, assignee=doctor, actor=member)
    assert changed and updated.assignee == doctor
    assert latest_event().data["conversation"]["assignee"] == {"id": doctor.pk, "name": "Paulo"}

    updated, changed = assign_conversation(conversation=conversation, assignee=None, actor=member)
    assert changed and Conversation.objects.get(pk=conversation.pk).assignee is None


def test_the_assignee_must_belong_to_the_clinic(conversation, member, outsider):
    with pytest.raises(InvalidInput) as refused:
        assign_conversation(conversation=conversation, assignee=outsider, actor=member)
    assert refused.value.field == "assignee"
    assert Conversation.objects.get(pk=conversation.pk).assignee is None


def test_staff_of_another_clinic_cannot_assign(conversation, outsider):
    with pytest.raises(NotAMember):
        assign_conversation(conversation=conversation, assignee=None, actor=outsider)


def test_an_action_joins_the_timeline_and_is_published(conversation, member):
    action = add_conversation_action(
        conversation=conversation,
        action_type="appointment_created",
        action_data={"date": "2026-12-03", "time": "14:00"},
        actor=member,
    )
    event = latest_event()
    assert event.type == "conversation:action" and event.conversation_id == conversation.pk
    assert event.data["action"]["id"] == action.pk
    assert event.data["action"]["action_data"] == {"date": "2026-12-03", "time": "14:00"}


@pytest.mark.parametrize("action_type,data", [("Appointment Created", {}), ("", {}), ("ok", ["not", "a", "dict"])])
def test_malformed_actions_are_refused(conversation, action_type, data):
    with pytest.raises(InvalidInput):
        add_conversation_action(conversation=conversation, action_type=action_type, action_data=data)
    assert not ConversationAction.objects.exists()


def test_staff_of_another_clinic_cannot_add_actions(conversation, outsider):
    with pytest.raises(NotAMember):
        add_conversation_action(conversation=conversation, action_type="note", actor=outsider)
    assert not ConversationAction.objects.exists()
