"""Each clinic's business hours as this process holds them (DESIGN §12: one selector for the away message,
the waiting time, the reports and n8n's `open`): read once, then kept until they change — a change drops
them here at once, and in every other process by a control message after the commit — and at most
RELOAD_SECONDS, as a backstop.

`of()` reads them through Django when this process does not hold them; the webhook's fast path, which may
run on the event loop, asks `held()` and otherwise runs `statement()` on its own connection and keeps the
answer with `remember()`."""

import json
from dataclasses import dataclass
from datetime import datetime

from django.db import connection

from conversations import hours
from conversations.held import HeldPerClinic
from conversations.models import BusinessHours, Clinic
from conversations.models.hours import DEFAULT_AWAY_MESSAGE, AwayMode, default_week

RELOAD_SECONDS = 60.0
DEFAULT_TARGET_MINUTES = 15


@dataclass(frozen=True)
class ClinicHours:
    rule: hours.Hours
    away_mode: str
    away_message: str
    first_response_target_minutes: int

    def is_open(self, at: datetime) -> bool:
        return hours.is_open(self.rule, at)

    def next_change(self, at: datetime) -> datetime | None:
        return hours.next_change(self.rule, at)

    def last_change(self, at: datetime) -> datetime | None:
        return hours.last_change(self.rule, at)

    def business_seconds(self, start: datetime, end: datetime) -> float:
        return hours.business_seconds(self.rule, start, end)

    def deadline(self, start: datetime) -> datetime | None:
        """When a wait that began at `start` passes the first-response target, in open time."""
        return hours.business_deadline(self.rule, start, self.first_response_target_minutes * 60)


_held: HeldPerClinic[ClinicHours] = HeldPerClinic(RELOAD_SECONDS)


def statement(clinic_id: int) -> tuple[str, dict]:
    """One row: the clinic's time zone and its stored hours (NULLs where none were ever set)."""
    clinics = connection.ops.quote_name(Clinic._meta.db_table)
    stored = connection.ops.quote_name(BusinessHours._meta.db_table)
    sql = (
        "SELECT c.timezone, h.week, h.closed_dates, h.away_mode, h.away_message, h.first_response_target_minutes "
        f"FROM {clinics} c LEFT JOIN {stored} h ON h.clinic_id = c.id WHERE c.id = %(clinic_id)s"
    )
    return sql, {"clinic_id": clinic_id}


def remember(clinic_id: int, row: tuple | None) -> ClinicHours:
    """The hours from `statement()`'s row, held from now on."""
    timezone, week, closed_dates, away_mode, away_message, target = row or ("UTC", None, None, None, None, None)
    week, closed_dates = (json.loads(v) if isinstance(v, str) else v for v in (week, closed_dates))  # JSON as text
    if week is None:  # never set: a usual clinic's week, no away message
        found = ClinicHours(
            hours.hours_of(timezone, default_week(), []), AwayMode.OFF, DEFAULT_AWAY_MESSAGE, DEFAULT_TARGET_MINUTES
        )
    else:
        found = ClinicHours(hours.hours_of(timezone, week, closed_dates), away_mode, away_message, target)
    return _held.put(clinic_id, found)


def of(clinic_id: int) -> ClinicHours:
    """The clinic's hours (read from the database when this process does not hold them fresh)."""
    found = held(clinic_id)
    if found is None:
        sql, params = statement(clinic_id)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
        found = remember(clinic_id, row)
    return found


def held(clinic_id: int) -> ClinicHours | None:
    """The clinic's hours if this process holds them fresh, else None: never a query."""
    return _held.get(clinic_id)


def forget(message: dict | None = None) -> None:
    """A clinic's hours (or its time zone) changed: read them again on next use. A control message's
    handler, and the change's own signal; no clinic named forgets every clinic's."""
    _held.forget(message)


def document(clinic: Clinic) -> dict:
    """The clinic's hours as the API and the settings page show them (the defaults until an admin sets them)."""
    stored = BusinessHours.objects.filter(clinic=clinic).first() or BusinessHours(clinic=clinic)
    return {
        "timezone": clinic.timezone,
        "week": {day: stored.week.get(day, []) for day in hours.DAYS},
        "closed_dates": list(stored.closed_dates),
        "away_mode": stored.away_mode,
        "away_message": stored.away_message,
        "first_response_target_minutes": stored.first_response_target_minutes,
    }


def open_state(clinic: Clinic, at: datetime) -> dict:
    """`{"open": …, "next_change_at": …}`: whether the clinic is open at `at` and when that next changes (an
    ISO time in the clinic's zone), or null when it never does."""
    found = of(clinic.pk)
    change = found.next_change(at)
    return {
        "open": found.is_open(at),
        "next_change_at": change.astimezone(clinic.tzinfo).isoformat() if change else None,
    }
