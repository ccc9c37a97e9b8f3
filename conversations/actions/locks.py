"""Row locks the actions take, each with the reason it is needed.

A row locked to change it is locked FOR NO KEY UPDATE (`select_for_update(no_key=True)`): a transaction
that wrote a row referring to it checks that reference at its commit (the foreign keys are deferred), after
it took the clinic's seq, and FOR UPDATE would hold that check up while this action waits for the seq: a
deadlock (conversations/tests/test_lock_order.py). A patient's merge (actions.patients) still locks FOR
UPDATE: it deletes the rows it locked.

A message on the fast path locks its conversation, then shares its patient (one statement), and a merge
takes the same order; on the full path, and in a patient's erasure, the patient comes first. The two
orders meet when a patient is erased while writing or while being merged, or writes on both paths at
once: PostgreSQL then ends one of them. An erasure is taken again (actions.privacy.erase_contact), a
message goes down the full path or is retried by Meta, a merge answers 503 and is asked for again."""

from django.db import connection

from conversations.models import Clinic, Conversation


def lock_conversation(conversation: Conversation) -> Conversation:
    """A fresh copy of the conversation, its row locked until the caller's transaction ends.

    Concurrent sends with one client_id, status changes and assignments then see each other's commits.
    """
    return (
        Conversation.objects.select_for_update(of=("self",), no_key=True)
        .select_related("contact", "assignee")
        .get(pk=conversation.pk)
    )


def lock_external_id(clinic_id: int, external_id: str) -> None:
    """Hold, until the caller's transaction ends, the right to tie a provider id of the clinic to a message
    (the delivery that learns it) or to look it up (a status reporting on it). On PostgreSQL an advisory
    lock on the pair; SQLite has one writer at a time, so a write (to the clinic's row, changing nothing)
    takes it."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            key = f"external-id:{clinic_id}:{external_id}"
            cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [key])
        else:
            cursor.execute(f"UPDATE {Clinic._meta.db_table} SET id = id WHERE id = %s", [clinic_id])
