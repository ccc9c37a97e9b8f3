"""No N+1: the list and the detail run a fixed number of queries whatever the number of rows."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from conversations.actions.conversations import add_conversation_action, assign_conversation, set_labels
from conversations.actions.inbound import receive_inbound_message
from conversations.actions.labels import create_label
from conversations.actions.messages import send_outbound_message
from conversations.actions.notes import add_note
from conversations.models import Role

# Authentication (user, membership, API session) and the page's own reads; the same for 5 rows or 50.
pytestmark = pytest.mark.usefixtures("simulated_number")  # replies go somewhere: the demo's kind of number

LIST_QUERIES = 6  # with the rows' labels, in one query
DETAIL_QUERIES = 12  # with the audit record of the reading (LGPD), the notes with their mentions, the labels


@pytest.fixture
def api(jwt_client, member):
    return jwt_client(member)


@pytest.mark.parametrize("rows", [5, 50])
def test_the_list(api, clinic, member, make_member, rows, django_assert_max_num_queries):
    doctor = make_member(clinic, Role.PROFESSIONAL)
    urgent = create_label(clinic=clinic, actor=member, name="Urgente", color="#d62728")
    for n in range(rows):
        conversation = receive_inbound_message(clinic=clinic, phone=f"55119111{n:05d}", content="Oi").conversation
        assign_conversation(conversation=conversation, assignee=doctor, actor=member)
        set_labels(conversation=conversation, labels=[urgent.pk], actor=member)
    with django_assert_max_num_queries(LIST_QUERIES):
        response = api.get("/api/conversations/", {"limit": 50})
    assert len(response.json()["results"]) == rows
    assert all(
        r["labels"] == [{"id": urgent.pk, "name": "Urgente", "color": "#d62728"}] for r in response.json()["results"]
    )
    assert all(r["assignee"]["id"] == doctor.pk and r["unread_count"] == 1 for r in response.json()["results"])


@pytest.mark.parametrize("rows", [5, 50])
def test_the_detail(api, clinic, member, rows, django_assert_max_num_queries):
    conversation = None
    for n in range(rows):
        conversation = receive_inbound_message(clinic=clinic, phone="5511911100000", content=f"m{n}").conversation
        photo = SimpleUploadedFile(f"foto{n}.png", b"\x89PNG" + b"0" * 10, content_type="image/png")
        send_outbound_message(conversation=conversation, sender=member, content=f"r{n}", attachment=photo)
        add_conversation_action(conversation=conversation, action_type="note", action_data={"n": n})
        add_note(conversation=conversation, author=member, content=f"nota {n} @{member.username}")
    with django_assert_max_num_queries(DETAIL_QUERIES):
        body = api.get(f"/api/conversations/{conversation.pk}/").json()
    assert len(body["messages"]) == min(2 * rows, 50) and len(body["actions"]) == rows
    assert len(body["notes"]) == min(rows, 25) and all(n["mentions"] for n in body["notes"])
    assert all(m["attachments"] for m in body["messages"] if m["direction"] == "outbound")
    assert all(m["sender"]["id"] == member.pk for m in body["messages"] if m["direction"] == "outbound")
