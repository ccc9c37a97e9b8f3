"""The event log partitioned by month, measured: the migration's time on a populated log, and a clinic's
reads and appends before and after; then the same question for messages (a partitioned copy of the
messages table, timed against the real one), for docs/realtime.md's plan.

It needs a scratch PostgreSQL database of its own (it migrates the event log back and forth and fills it):

    createdb taskmed_partitions
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/taskmed_partitions \\
        .venv/bin/python bench/partitions.py --events 1000000 --scale 500

`--scale` seeds the demo data (`seed_demo --scale`, 2,000 messages per unit) once; `--events` fills the
event log over the last 12 months. Prints one JSON line.
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "taskmed.settings")


def ms(seconds: float) -> float:
    return round(1000 * seconds, 3)


def timed(run, repeat: int) -> dict:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    times.sort()
    return {"p50_ms": ms(statistics.median(times)), "p90_ms": ms(times[int(0.9 * (len(times) - 1))])}


def fill_events(cursor, count: int) -> None:
    cursor.execute("TRUNCATE realtime_event")
    cursor.execute("SELECT id FROM conversations_clinic ORDER BY id")
    clinics = [row[0] for row in cursor.fetchall()]
    cursor.execute(
        "INSERT INTO realtime_event (clinic_id, seq, type, conversation_id, data, created_at) "
        "SELECT c.id, row_number() OVER (PARTITION BY c.id ORDER BY n), 'message:new', n %% 5000, "
        "jsonb_build_object('message', jsonb_build_object('id', n, 'content', 'Bom dia, tudo bem?')), "
        "now() - interval '365 days' + (n * interval '365 days') / %s "
        "FROM generate_series(1, %s) n JOIN conversations_clinic c ON c.id = (%s::bigint[])[1 + n %% %s]",
        [count, count, clinics, len(clinics)],
    )
    cursor.execute(
        "UPDATE conversations_clinic SET event_seq = coalesce((SELECT max(seq) FROM realtime_event "
        "WHERE clinic_id = conversations_clinic.id), 0)"
    )
    cursor.execute("ANALYZE realtime_event")


def log_costs(clinic_id: int) -> dict:
    from django.db import transaction

    from realtime import log

    latest = log.latest_seq(clinic_id)
    return {
        "resume_500_behind": timed(lambda: log.events_after(clinic_id, latest - 500, 1001, latest), 50),
        "resume_from_a_month_ago": timed(lambda: log.events_after(clinic_id, latest - 8000, 1001, latest), 20),
        "append": timed(lambda: transaction.atomic()(log.publish)(clinic_id, "message:new", {"n": 1}), 300),
    }


def message_costs(cursor, table: str, conversation_id: int) -> dict:
    detail = (
        f"SELECT id, content, created_at FROM {table} WHERE conversation_id = %s "
        "ORDER BY created_at DESC, id DESC LIMIT 50"
    )
    recent = f"SELECT count(*) FROM {table} WHERE clinic_id = %s AND created_at > now() - interval '7 days'"
    cursor.execute("SELECT clinic_id FROM conversations_message WHERE conversation_id = %s LIMIT 1", [conversation_id])
    clinic_id = cursor.fetchone()[0]
    return {
        "conversation_last_50": timed(lambda: cursor.execute(detail, [conversation_id]) or cursor.fetchall(), 50),
        "clinic_last_7_days": timed(lambda: cursor.execute(recent, [clinic_id]) or cursor.fetchall(), 20),
    }


def partitioned_messages(cursor) -> float:
    """A monthly-partitioned copy of the messages table, with the same indexes (unique ones widened by
    created_at, as PostgreSQL requires); returns the seconds the copy took."""
    cursor.execute("DROP TABLE IF EXISTS message_by_month")
    cursor.execute(
        "CREATE TABLE message_by_month (LIKE conversations_message INCLUDING DEFAULTS INCLUDING GENERATED) "
        "PARTITION BY RANGE (created_at)"
    )
    cursor.execute(
        "SELECT date_trunc('month', min(created_at)), date_trunc('month', max(created_at)) FROM conversations_message"
    )
    first, last = cursor.fetchone()
    cursor.execute(
        "SELECT to_char(m, 'YYYYMM'), m, m + interval '1 month' FROM generate_series(%s::timestamptz, %s, '1 month') m",
        [first, last],
    )
    for suffix, lo, hi in cursor.fetchall():
        cursor.execute(
            f"CREATE TABLE message_by_month_{suffix} PARTITION OF message_by_month FOR VALUES FROM (%s) TO (%s)",
            [lo, hi],
        )
    started = time.perf_counter()
    cursor.execute(
        "SELECT string_agg(column_name, ', ' ORDER BY ordinal_position) FROM information_schema.columns "
        "WHERE table_name = 'conversations_message' AND is_generated = 'NEVER'"
    )
    columns = cursor.fetchone()[0]
    cursor.execute(f"INSERT INTO message_by_month ({columns}) SELECT {columns} FROM conversations_message")
    cursor.execute("ALTER TABLE message_by_month ADD PRIMARY KEY (id, created_at)")
    cursor.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'conversations_message' "
        "AND indexname NOT LIKE '%%pkey'"
    )
    for name, definition in cursor.fetchall():
        definition = definition.replace(
            f"INDEX {name} ON public.conversations_message", f"INDEX mbm_{name} ON message_by_month"
        )
        if definition.startswith("CREATE UNIQUE"):  # the partition key must be in every unique index
            definition = definition.replace(")", ", created_at)", 1)
        cursor.execute(definition)
    cursor.execute("ANALYZE message_by_month")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--scale", type=int, default=500)
    args = parser.parse_args()
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from conversations.models import Message
    from realtime import partitions

    call_command("migrate", verbosity=0)
    if Message.objects.count() < args.scale * 1000:
        call_command("seed_demo", "--scale", str(args.scale), verbosity=0)
    call_command("migrate", "realtime", "0002", verbosity=0)
    with connection.cursor() as cursor:
        fill_events(cursor, args.events)
        cursor.execute("SELECT clinic_id FROM realtime_event GROUP BY clinic_id ORDER BY count(*) DESC LIMIT 1")
        clinic_id = cursor.fetchone()[0]
    plain = log_costs(clinic_id)
    started = time.perf_counter()
    call_command("migrate", "realtime", verbosity=0)
    migration_s = time.perf_counter() - started
    assert partitions.is_partitioned()
    partitioned = log_costs(clinic_id)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM realtime_event")
        events = cursor.fetchone()[0]
        cursor.execute(
            "SELECT conversation_id FROM conversations_message GROUP BY conversation_id ORDER BY count(*) DESC LIMIT 1"
        )
        conversation_id = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM conversations_message")
        messages = cursor.fetchone()[0]
        copy_s = partitioned_messages(cursor)
        messages_plain = message_costs(cursor, "conversations_message", conversation_id)
        messages_partitioned = message_costs(cursor, "message_by_month", conversation_id)
        cursor.execute("DROP TABLE message_by_month")
    print(
        json.dumps(
            {
                "benchmark": "partitions",
                "events": events,
                "migration_s": round(migration_s, 1),
                "migration_s_per_million": round(migration_s / (events / 1e6), 1),
                "log_plain": plain,
                "log_partitioned": partitioned,
                "messages": messages,
                "messages_copy_s": round(copy_s, 1),
                "messages_plain": messages_plain,
                "messages_partitioned": messages_partitioned,
            }
        )
    )


if __name__ == "__main__":
    main()
