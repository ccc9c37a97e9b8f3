"""The event log partitioned by month in PostgreSQL (declarative partitioning, `PARTITION BY RANGE
(created_at)`): old events go by dropping a whole month's partition, at once and without a row's worth of
work or bloat, instead of deleting row by row.

- A partition per calendar month (UTC), `realtime_event_pYYYYMM`, made ahead for this month and the next
  AHEAD_MONTHS; a DEFAULT partition catches anything outside them (a clock far off, or upkeep that did not
  run for months), and upkeep moves its rows into their month's partition, made for them.
- `maintain(keep_days)` (run daily by `manage.py purge_expired`) makes the coming months' partitions and
  drops every partition wholly older than `keep_days` (EVENT_LOG_KEEP_DAYS). Each clinic's own, shorter
  retention still deletes its rows from the partitions that remain (conversations.actions.privacy).
- The primary key is (id, created_at) and the uniqueness of a clinic's seq is (clinic_id, seq, created_at):
  PostgreSQL requires the partition key in every unique index. A seq is unique because it is taken under
  the clinic's row lock (realtime.log), as before; the constraint remains a backstop within a month.

Elsewhere (SQLite, the embedded setup) the log is one plain table and `maintain` does nothing.
"""

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from django.db import connection, transaction
from django.utils import timezone

TABLE = "realtime_event"
DEFAULT = "realtime_event_default"
AHEAD_MONTHS = 2
_BOUND = re.compile(r"FROM \('([^']+)'\) TO \('([^']+)'\)")


@dataclass
class Maintained:
    created: list[str] = field(default_factory=list)
    moved_from_default: int = 0
    dropped: dict[str, int] = field(default_factory=dict)  # partition → the events it held


def month_of(moment: datetime | date) -> date:
    return date(moment.year, moment.month, 1)


def next_month(month: date, months: int = 1) -> date:
    index = month.year * 12 + month.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def partition_name(month: date) -> str:
    return f"{TABLE}_p{month:%Y%m}"


def _at_midnight(month: date) -> datetime:
    return datetime(month.year, month.month, 1, tzinfo=UTC)


def _literal(month: date) -> str:
    return f"'{month.isoformat()} 00:00:00+00'"


def is_partitioned() -> bool:
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relkind FROM pg_class WHERE relname = %s AND relnamespace = 'public'::regnamespace", [TABLE]
        )
        row = cursor.fetchone()
    return row is not None and row[0] == "p"


def partitions() -> list[tuple[str, datetime | None, datetime | None]]:
    """(name, from, to) of each partition, oldest first; the default partition has no bounds."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT child.relname, pg_get_expr(child.relpartbound, child.oid) FROM pg_inherits "
            "JOIN pg_class child ON child.oid = pg_inherits.inhrelid "
            "JOIN pg_class parent ON parent.oid = pg_inherits.inhparent WHERE parent.relname = %s",
            [TABLE],
        )
        found = []
        for name, bound in cursor.fetchall():
            match = _BOUND.search(bound)
            if match is None:
                found.append((name, None, None))
                continue
            found.append((name, *(datetime.fromisoformat(value) for value in match.groups())))
    return sorted(found, key=lambda p: (p[1] is None, p[1] or datetime.min.replace(tzinfo=UTC)))


def create_month(cursor, month: date) -> int:
    """Make `month`'s partition (if missing), moving in what the default partition holds of it; returns
    how many rows were moved."""
    name, lo, hi = partition_name(month), _literal(month), _literal(next_month(month))
    cursor.execute("SELECT 1 FROM pg_class WHERE relname = %s", [name])
    if cursor.fetchone():
        return 0
    cursor.execute(f"SELECT count(*) FROM {DEFAULT} WHERE created_at >= {lo} AND created_at < {hi}")
    stray = cursor.fetchone()[0]
    if not stray:
        cursor.execute(f"CREATE TABLE {name} PARTITION OF {TABLE} FOR VALUES FROM ({lo}) TO ({hi})")
        return 0
    # The default partition holds rows of this month: it must give them up before the month is attached.
    cursor.execute(f"ALTER TABLE {TABLE} DETACH PARTITION {DEFAULT}")
    cursor.execute(f"CREATE TABLE {name} PARTITION OF {TABLE} FOR VALUES FROM ({lo}) TO ({hi})")
    cursor.execute(
        f"WITH moved AS (DELETE FROM {DEFAULT} WHERE created_at >= {lo} AND created_at < {hi} RETURNING *) "
        f"INSERT INTO {TABLE} (id, seq, type, conversation_id, data, created_at, clinic_id) "
        "SELECT id, seq, type, conversation_id, data, created_at, clinic_id FROM moved"
    )
    cursor.execute(f"ALTER TABLE {TABLE} ATTACH PARTITION {DEFAULT} DEFAULT")
    return stray


def maintain(keep_days: int, now: datetime | None = None, *, dry_run: bool = False) -> Maintained:
    """Make this month's and the next AHEAD_MONTHS' partitions; drop those wholly older than `keep_days`.
    With `dry_run`, only say what it would do."""
    done = Maintained()
    if not is_partitioned():
        return done
    now = now or timezone.now()
    this_month = month_of(now.astimezone(UTC))
    with transaction.atomic(), connection.cursor() as cursor:
        if not dry_run:
            cursor.execute(f"LOCK TABLE {TABLE} IN SHARE ROW EXCLUSIVE MODE")  # one upkeep at a time
            # Rows moved out of the default partition are checked at once: a partition with checks still
            # pending in the transaction cannot be dropped in it.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        # The coming months, and any month the default partition caught rows of (so they can go in turn).
        cursor.execute(f"SELECT DISTINCT date_trunc('month', created_at AT TIME ZONE 'UTC')::date FROM {DEFAULT}")
        strays = [row[0] for row in cursor.fetchall()]
        for month in sorted({*strays, *(next_month(this_month, ahead) for ahead in range(AHEAD_MONTHS + 1))}):
            if partition_name(month) not in {name for name, _, _ in partitions()}:
                if not dry_run:
                    done.moved_from_default += create_month(cursor, month)
                done.created.append(partition_name(month))
        cutoff = now - timedelta(days=keep_days)
        for name, _lo, hi in partitions():
            if hi is not None and hi <= cutoff:
                cursor.execute(f"SELECT count(*) FROM {name}")  # once a month, one partition
                done.dropped[name] = cursor.fetchone()[0]
                if not dry_run:
                    cursor.execute(f"DROP TABLE {name}")
        if dry_run:  # the months it would make for the default partition's rows, and then drop at once
            for month in strays:
                if partition_name(month) in done.created and _at_midnight(next_month(month)) <= cutoff:
                    hi = _literal(next_month(month))
                    cursor.execute(
                        f"SELECT count(*) FROM {DEFAULT} WHERE created_at >= {_literal(month)} AND created_at < {hi}"
                    )
                    done.dropped[partition_name(month)] = cursor.fetchone()[0]
    return done


def partition_existing(cursor, now: datetime) -> None:
    """Turn the plain `realtime_event` into the partitioned one, rows and next id kept (the migration)."""
    old = f"{TABLE}_unpartitioned"
    cursor.execute(f"ALTER TABLE {TABLE} RENAME TO {old}")
    cursor.execute(f"ALTER TABLE {old} RENAME CONSTRAINT {TABLE}_pkey TO {old}_pkey")
    cursor.execute(f"ALTER TABLE {old} RENAME CONSTRAINT event_unique_clinic_seq TO event_unique_clinic_seq_old")
    cursor.execute(
        f"CREATE TABLE {TABLE} ("
        "id bigint GENERATED BY DEFAULT AS IDENTITY, seq bigint NOT NULL, "
        "type varchar(40) NOT NULL, conversation_id bigint NULL, data jsonb NOT NULL, "
        "created_at timestamptz NOT NULL, clinic_id bigint NOT NULL, "
        f"CONSTRAINT {TABLE}_pkey PRIMARY KEY (id, created_at), CONSTRAINT {TABLE}_seq_check CHECK (seq >= 0), "
        "CONSTRAINT event_unique_clinic_seq UNIQUE (clinic_id, seq, created_at)"
        ") PARTITION BY RANGE (created_at)"
    )
    cursor.execute(
        f"ALTER TABLE {TABLE} ADD CONSTRAINT {TABLE}_clinic_id_fk_conversations_clinic_id FOREIGN KEY (clinic_id) "
        "REFERENCES conversations_clinic (id) DEFERRABLE INITIALLY DEFERRED"
    )
    cursor.execute(f"CREATE TABLE {DEFAULT} PARTITION OF {TABLE} DEFAULT")
    cursor.execute(f"SELECT min(created_at), max(id) FROM {old}")
    first, last_id = cursor.fetchone()
    month, until = month_of((first or now).astimezone(UTC)), next_month(month_of(now.astimezone(UTC)), AHEAD_MONTHS)
    while month <= until:
        create_month(cursor, month)
        month = next_month(month)
    _move_rows(cursor, old, last_id)


def unpartition(cursor) -> None:
    """Back to one plain table, rows and next id kept (the migration, reversed)."""
    old = f"{TABLE}_partitioned"
    cursor.execute(f"ALTER TABLE {TABLE} RENAME TO {old}")
    cursor.execute(f"ALTER TABLE {old} RENAME CONSTRAINT {TABLE}_pkey TO {old}_pkey")
    cursor.execute(f"ALTER TABLE {old} RENAME CONSTRAINT event_unique_clinic_seq TO event_unique_clinic_seq_old")
    cursor.execute(
        f"CREATE TABLE {TABLE} ("
        "id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, seq bigint NOT NULL CHECK (seq >= 0), "
        "type varchar(40) NOT NULL, conversation_id bigint NULL, data jsonb NOT NULL, "
        "created_at timestamptz NOT NULL, clinic_id bigint NOT NULL, "
        "CONSTRAINT event_unique_clinic_seq UNIQUE (clinic_id, seq))"
    )
    cursor.execute(
        f"ALTER TABLE {TABLE} ADD CONSTRAINT {TABLE}_clinic_id_fk_conversations_clinic_id FOREIGN KEY (clinic_id) "
        "REFERENCES conversations_clinic (id) DEFERRABLE INITIALLY DEFERRED"
    )
    cursor.execute(f"SELECT max(id) FROM {old}")
    last_id = cursor.fetchone()[0]
    _move_rows(cursor, old, last_id)


def _move_rows(cursor, old: str, last_id: int | None) -> None:
    """Every event of the `old` table into the new one, ids kept and the next id after the last; then the old
    table goes."""
    cursor.execute(
        f"INSERT INTO {TABLE} (id, seq, type, conversation_id, data, created_at, clinic_id) "
        f"SELECT id, seq, type, conversation_id, data, created_at, clinic_id FROM {old}"
    )
    if last_id is not None:
        cursor.execute(f"SELECT setval(pg_get_serial_sequence('{TABLE}', 'id'), %s)", [last_id])
    cursor.execute(f"DROP TABLE {old}")
