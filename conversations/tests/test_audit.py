"""The audit trail: reading, sending, exporting, erasing and every change are recorded (who, what, when,
from where), readable in the admin, and append-only for everyone, the database included."""

import pytest
from django.db import connection, transaction
from django.urls import reverse

from conversations.actions.inbound import receive_inbound_message
from conversations.models import AuditEvent


@pytest.fixture
def conversation(clinic):
    return receive_inbound_message(clinic=clinic, phone="5511987654321", content="Oi").conversation


def test_reading_a_conversation_is_recorded_by_the_api_and_the_inbox(jwt_client, client, member, conversation):
    jwt_client(member).get(f"/api/conversations/{conversation.pk}/messages/", REMOTE_ADDR="10.1.1.1")
    client.force_login(member)
    client.get(reverse("conversation", args=[conversation.pk]), REMOTE_ADDR="10.2.2.2")
    client.get(reverse("conversation", args=[conversation.pk]), HTTP_X_FRAGMENT="patient")  # a refresh
    reads = AuditEvent.objects.filter(action="conversation.read").order_by("at")
    assert [(r.actor, r.actor_name, r.object_id, r.detail["via"], r.ip) for r in reads] == [
        (member, member.username, str(conversation.pk), "api", "10.1.1.1"),
        (member, member.username, str(conversation.pk), "inbox", "10.2.2.2"),
    ]


def test_the_trail_cannot_be_changed_or_deleted_through_the_app(conversation, member, jwt_client):
    jwt_client(member).get(f"/api/conversations/{conversation.pk}/messages/")
    record = AuditEvent.objects.get(action="conversation.read")
    record.detail = {"via": "forged"}
    with pytest.raises(PermissionError):
        record.save()
    with pytest.raises(PermissionError):
        record.delete()
    with pytest.raises(PermissionError):
        AuditEvent.objects.filter(pk=record.pk).update(ip="1.2.3.4")
    with pytest.raises(PermissionError):
        AuditEvent.objects.all().delete()
    assert AuditEvent.objects.get(pk=record.pk).detail == {"via": "api"}


@pytest.mark.postgres
@pytest.mark.parametrize("statement", ["UPDATE {table} SET ip = '6.6.6.6'", "DELETE FROM {table}"])
def test_the_database_itself_refuses_to_change_the_trail(conversation, member, jwt_client, statement):
    from django.db.utils import DatabaseError

    jwt_client(member).get(f"/api/conversations/{conversation.pk}/messages/")
    table = connection.ops.quote_name(AuditEvent._meta.db_table)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(statement.format(table=table))
    assert AuditEvent.objects.filter(action="conversation.read").exists()


def test_the_trail_outlives_the_user_and_stays_readable_in_the_admin(
    client, django_user_model, conversation, member, jwt_client
):
    jwt_client(member).get(f"/api/conversations/{conversation.pk}/messages/")
    name = member.username
    member.delete()
    record = AuditEvent.objects.get(action="conversation.read")
    assert (record.actor_id is not None, record.actor_name) == (True, name)
    support = django_user_model.objects.create_superuser("suporte", "s@example.com", "senha-forte-123")
    client.force_login(support)
    page = client.get(reverse("admin:conversations_auditevent_changelist"))
    assert page.status_code == 200 and name in page.text
    detail = client.get(reverse("admin:conversations_auditevent_change", args=[record.pk]))
    assert detail.status_code == 200 and "conversation.read" in detail.text
    assert (
        client.post(reverse("admin:conversations_auditevent_delete", args=[record.pk]), {"post": "yes"}).status_code
        == 403
    )
