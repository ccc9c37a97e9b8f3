"""The text of the fast path's statements (actions.inbound_fast), PostgreSQL's: the same for every message,
so each is built once a process, not for each message (quoting their tables made a database wrapper for
each request's context on the event loop; py-spy, docs/benchmarks.md).

Each reads the parameters inbound_fast gives it; the CTEs that log the events are realtime.log's. What the
text names is read at the first message: the models' tables and REALTIME_TENANT_MODEL, fixed for a process.
"""

import functools

from django.db import connection

from conversations.models import (
    ActivityFact,
    Contact,
    Conversation,
    ConversationFact,
    ErasedIdentifier,
    Message,
)
from realtime import log

CONTACT_COLUMNS = (
    "id",
    "name",
    "phone",
    "whatsapp_id",
    "whatsapp_user_id",
    "whatsapp_parent_user_id",
    "whatsapp_username",
    "profile_name",
    "email",
    "status",
    "created_at",
    "updated_at",
)
MESSAGE_COLUMNS = (
    "clinic_id, conversation_id, direction, sender_type, sender_id, message_type, content, metadata, status, "
    "error, external_id, client_id, created_at, status_changed_at"
)
MESSAGE_VALUES = (
    "%(clinic_id)s, {conversation}, %(direction)s, %(sender_type)s, NULL, %(message_type)s, "
    "%(content)s, %(metadata)s::jsonb, %(status)s, '', %(external_id)s, NULL, %(at)s, %(at)s"
)
# The reports' count of the hour's patient messages (actions.reporting.count_activity), once the message is stored.
_ACTIVITY = ActivityFact._meta.db_table
COUNTED = (
    f"counted AS (INSERT INTO {_ACTIVITY} (clinic_id, hour, user_id, shard, inbound, staff_replies, "
    "assistant_replies, auto_replies, opened, resolved) SELECT %(clinic_id)s, %(hour)s, 0, %(shard)s, 1, 0, 0, 0, "
    f"%(opened)s, 0 FROM stored ON CONFLICT (clinic_id, hour, user_id, shard) DO UPDATE SET inbound = "
    f"{_ACTIVITY}.inbound + 1, opened = {_ACTIVITY}.opened + excluded.opened)"
)
# Nothing an erasure left marks this message as an erased patient's (models.privacy): its id, or who sent it
# when it happened before they were erased (an old notification Meta delivers again). Probes of a small index.
NOT_ERASED = (
    f"NOT EXISTS (SELECT 1 FROM {ErasedIdentifier._meta.db_table} e WHERE e.clinic_id = %(clinic_id)s "
    "AND (e.digest = ANY(%(erased_messages)s) OR (e.digest = ANY(%(erased_patients)s) AND e.erased_at >= %(at)s)))"
)


def _table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


@functools.cache
def read_sql() -> str:
    contact = ", ".join(f"c.{c}" for c in CONTACT_COLUMNS)
    return (
        f"SELECT {contact}, v.id "
        f"FROM (SELECT 1) AS one LEFT JOIN {_table(Contact)} c ON c.clinic_id = %(clinic)s AND (c.phone = %(phone)s "
        "OR (%(user_id)s <> '' AND c.whatsapp_user_id = %(user_id)s) "
        "OR (%(parent_id)s <> '' AND c.whatsapp_parent_user_id = %(parent_id)s)) "
        f"LEFT JOIN {_table(Conversation)} v "
        "ON v.contact_id = c.id AND v.clinic_id = c.clinic_id AND v.channel = %(channel)s AND v.status <> %(resolved)s"
    )


@functools.cache
def into_conversation_sql() -> str:
    with_id = "jsonb_set(%(event_data_0)s::jsonb, '{message,id}', to_jsonb((SELECT id FROM stored)))"
    return (
        "WITH unchanged AS ("
        f"SELECT v.id FROM {_table(Conversation)} v JOIN {_table(Contact)} c ON c.id = v.contact_id "
        "WHERE v.id = %(conversation_id)s AND v.status <> %(resolved)s AND v.snoozed_until IS NULL "
        f"AND c.id = %(contact_id)s AND c.updated_at = %(contact_updated_at)s AND {NOT_ERASED} "
        "FOR NO KEY UPDATE OF v FOR SHARE OF c), "
        f"stored AS (INSERT INTO {_table(Message)} ({MESSAGE_COLUMNS}) "
        f"SELECT {MESSAGE_VALUES.format(conversation='unchanged.id')} FROM unchanged "
        "ON CONFLICT (clinic_id, external_id) WHERE external_id IS NOT NULL DO NOTHING RETURNING id), "
        f"touched AS (UPDATE {_table(Conversation)} v SET last_message_at = GREATEST(v.last_message_at, %(at)s), "
        "updated_at = %(event_at)s, whatsapp_number_id = COALESCE(NULLIF(%(number_id)s, ''), v.whatsapp_number_id), "
        "awaiting_since = COALESCE(v.awaiting_since, %(at)s) "
        "FROM stored WHERE v.id = %(conversation_id)s RETURNING v.id), "
        f"{COUNTED}, "
        f"{log.append_ctes('stored', data={0: with_id})} "
        "SELECT (SELECT id FROM stored), (SELECT max(seq) FROM logged)"
    )


@functools.cache
def new_ids_sql() -> str:
    ids = ", ".join(
        f"nextval(pg_get_serial_sequence('{m._meta.db_table}', 'id'))" for m in (Contact, Conversation, Message)
    )
    return f"SELECT {ids}"


@functools.cache
def first_message_sql() -> str:
    return (
        f"WITH patient AS (INSERT INTO {_table(Contact)} (id, clinic_id, name, phone, whatsapp_id, whatsapp_user_id, "
        "whatsapp_parent_user_id, whatsapp_username, profile_name, email, status, created_at, updated_at) "
        "SELECT %(contact_id)s, %(clinic_id)s, '', %(phone)s, %(whatsapp_id)s, %(user_id)s, %(parent_id)s, '', "
        "%(profile_name)s, '', %(contact_status)s, %(event_at)s, %(event_at)s "
        f"WHERE NOT EXISTS (SELECT 1 FROM {_table(Message)} WHERE clinic_id = %(clinic_id)s "
        f"AND external_id = %(external_id)s) AND {NOT_ERASED} ON CONFLICT DO NOTHING RETURNING id), "
        f"thread AS (INSERT INTO {_table(Conversation)} (id, clinic_id, contact_id, channel, status, assignee_id, "
        "last_message_at, whatsapp_number_id, awaiting_since, created_at, updated_at) SELECT %(conversation_id)s, "
        "%(clinic_id)s, patient.id, %(channel)s, %(open)s, NULL, %(at)s, %(number_id)s, %(at)s, %(event_at)s, "
        "%(event_at)s FROM patient RETURNING id), "
        f"stored AS (INSERT INTO {_table(Message)} (id, {MESSAGE_COLUMNS}) "
        f"SELECT %(message_id)s, {MESSAGE_VALUES.format(conversation='thread.id')} FROM thread RETURNING id), "
        f"attendance AS (INSERT INTO {_table(ConversationFact)} (clinic_id, conversation_id, opened_at, "
        "first_response_by, staff_replies, assistant_replies) SELECT %(clinic_id)s, thread.id, %(at)s, '', 0, 0 "
        "FROM thread), "
        f"{COUNTED}, "
        f"{log.append_ctes('stored', count=2)} "
        "SELECT (SELECT count(*) FROM stored), (SELECT max(seq) FROM logged)"
    )
