"""The shared reads: the inbox list with its per-user unread counts, in a fixed number of queries."""

import pytest

from conversations.actions.inbound import receive_inbound_message
from conversations.actions.messages import mark_read, send_outbound_message
from conversations.models import Conversation
from conversations.selectors import conversation_list_for

pytestmark = pytest.mark.usefixtures("simulated_number")  # replies go somewhere: the demo's kind of number


def receive(clinic, phone, n):
    return receive_inbound_message(clinic=clinic, phone=phone, content=f"mensagem {n}", external_id=f"{phone}-{n}")


@pytest.fixture
def two_threads(clinic):
    first = [receive(clinic, "5511911110001", n) for n in range(4)]
    second = [receive(clinic, "5511911110002", n) for n in range(3)]
    return first, second


def test_unread_counts_inbound_messages_after_each_users_own_marker(clinic, member, make_member, two_threads):
    first, second = two_threads
    colleague = make_member(clinic)
    mark_read(user=member, conversation=first[0].conversation, message=first[1].message)
    send_outbound_message(conversation=first[0].conversation, sender=member, content="Resposta")

    mine = {c.pk: c.unread_count for c in conversation_list_for(clinic, member)}
    theirs = {c.pk: c.unread_count for c in conversation_list_for(clinic, colleague)}

    assert mine == {first[0].conversation.pk: 2, second[0].conversation.pk: 3}
    assert theirs == {first[0].conversation.pk: 4, second[0].conversation.pk: 3}


def test_newest_activity_first_with_the_last_message_as_preview(clinic, member, two_threads):
    first, second = two_threads
    send_outbound_message(conversation=first[0].conversation, sender=member, content="Última palavra")
    empty = Conversation.objects.create(clinic=clinic, contact=second[0].contact, status="resolved")

    rows = list(conversation_list_for(clinic, member))

    assert [r.pk for r in rows] == [empty.pk, first[0].conversation.pk, second[0].conversation.pk]
    assert rows[0].last_message_content is None and rows[0].activity_at == empty.created_at
    assert (rows[1].last_message_content, rows[1].last_message_direction) == ("Última palavra", "outbound")


def test_only_the_clinics_own_conversations(clinic, other_clinic, member, two_threads):
    receive(other_clinic, "5511911110009", 0)
    assert {c.clinic_id for c in conversation_list_for(clinic, member)} == {clinic.pk}


@pytest.mark.parametrize("threads", [5, 50])
def test_a_fixed_number_of_queries_whatever_the_page_size(clinic, member, threads, django_assert_num_queries):
    for n in range(threads):
        receive(clinic, f"55119222{n:05d}", 0)
    with django_assert_num_queries(1):
        rows = list(conversation_list_for(clinic, member))
        assert [r.contact.phone for r in rows] and all(r.unread_count == 1 for r in rows)
