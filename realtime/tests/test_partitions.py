"""The event log partitioned by month on PostgreSQL: the migration turns a populated plain log into the
partitioned one (and back) keeping every event, its id and seq; reads in seq order cross months; upkeep
makes the coming months, moves what the default partition caught, and drops whole months past
EVENT_LOG_KEEP_DAYS, after which a client resuming from before them reloads (resync)."""

from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.db import connection, transaction

from realtime import log, partitions
from realtime.models import Event

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def at(*parts) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def log_events(clinic, moments: list[datetime]) -> None:
    """Events of the clinic at these moments, seq 1…n, as the write path numbers them."""
    with transaction.atomic():
        for seq, moment in enumerate(moments, start=1):
            Event.objects.create(clinic=clinic, seq=seq, type="message:new", data={"n": seq}, created_at=moment)
        type(clinic).objects.filter(pk=clinic.pk).update(event_seq=len(moments))


def test_the_migration_partitions_a_populated_log_and_back_keeping_every_event(clinic, other_clinic):
    call_command("migrate", "realtime", "0002", verbosity=0)
    try:
        assert not partitions.is_partitioned()
        moments = [at(2025, 11, 30, 23, 59), at(2026, 1, 15), at(2026, 6, 1), at(2026, 6, 2)]
        log_events(clinic, moments)
        log_events(other_clinic, [at(2026, 3, 3)])
        before = list(Event.objects.order_by("id").values_list("id", "clinic_id", "seq", "created_at", "data"))

        call_command("migrate", "realtime", verbosity=0)

        assert partitions.is_partitioned()
        names = [name for name, _, _ in partitions.partitions()]
        assert names[0] == "realtime_event_p202511" and names[-1] == "realtime_event_default"
        assert "realtime_event_p202606" in names and len(names) >= 10  # every month since, and two ahead
        after = list(Event.objects.order_by("id").values_list("id", "clinic_id", "seq", "created_at", "data"))
        assert after == before
        assert [e.seq for e in log.events_after(clinic.pk, 1, 10)] == [2, 3, 4], "in seq order across months"
        with transaction.atomic():
            published = log.publish(clinic.pk, "message:new", {"n": 5})
        assert published.seq == 5 and published.id > max(row[0] for row in before), "ids go on after the copy"

        call_command("migrate", "realtime", "0002", verbosity=0)
        assert not partitions.is_partitioned()
        assert Event.objects.count() == len(before) + 1
        with transaction.atomic():
            assert log.publish(clinic.pk, "message:new", {"n": 6}).id > published.id
    finally:
        call_command("migrate", "realtime", verbosity=0)
    assert partitions.is_partitioned()


def test_upkeep_makes_the_coming_months_and_drops_whole_months_past_the_limit(clinic):
    now = at(2026, 12, 7, 12)
    # Months the migration did not make (the test database was migrated on another day) go to the default
    # partition; upkeep gives each its own partition, then drops those wholly older than 90 days.
    log_events(clinic, [at(2026, 5, 21), at(2026, 8, 29), at(2026, 11, 27), at(2026, 12, 7)])

    existing = partitions.partitions()
    planned = partitions.maintain(90, now, dry_run=True)
    assert partitions.partitions() == existing and Event.objects.count() == 4, "a dry run changes nothing"

    done = partitions.maintain(90, now)

    assert done.dropped == planned.dropped | {"realtime_event_p202605": 1, "realtime_event_p202608": 1}
    names = [name for name, _, _ in partitions.partitions()]
    for month in ("202612", "202701", "202702"):
        assert f"realtime_event_p{month}" in names
    assert {rows for name, rows in done.dropped.items() if not name.endswith(("202605", "202608"))} <= {0}
    assert "realtime_event_p202605" not in names and "realtime_event_p202608" not in names
    assert "realtime_event_p202611" in names, "November ends within 90 days: kept"
    assert list(Event.objects.order_by("seq").values_list("seq", flat=True)) == [3, 4]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {partitions.DEFAULT}")
        assert cursor.fetchone()[0] == 0, "the default partition gave up what it caught"
    events = log.events_after(clinic.pk, 0, 10, upto=4)
    assert log.pruned(events, 0, 4), "a client resuming from before the dropped months reloads (resync)"
    assert partitions.maintain(90, now).created == [], "run again: nothing more to make"


def test_purge_expired_keeps_the_partitions_and_says_what_it_did(clinic, settings, capsys):
    settings.EVENT_LOG_KEEP_DAYS = 30
    log_events(clinic, [datetime.now(UTC) - timedelta(days=400)])
    call_command("purge_expired")
    dry = capsys.readouterr().out
    assert "would drop: realtime_event_p" in dry and Event.objects.count() == 1
    call_command("purge_expired", "--yes")
    done = capsys.readouterr().out
    assert "dropped: realtime_event_p" in done and "(≈ 1 events)" in done
    assert Event.objects.count() == 0
