"""A clinic admin sets the clinic's business hours: the week, closed dates, the away message and when it
goes, and the first-response target. Checked whole before anything is stored; audited by field name."""

import zoneinfo
from datetime import date

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from conversations import events
from conversations.actions.audit import record_audit
from conversations.errors import InvalidInput, NotAMember
from conversations.hours import DAYS, MINUTES_A_DAY, minutes_of, whole_hours
from conversations.models import BusinessHours, Clinic
from conversations.models.hours import AwayMode
from conversations.selectors import membership_for
from conversations.storable import unstorable

MAX_AWAY_MESSAGE_CHARS = 1000
MAX_CLOSED_DATES = 366
MAX_INTERVALS_A_DAY = 12
MAX_TARGET_MINUTES = 7 * 24 * 60


def checked_week(week) -> dict[str, list[list[str]]]:
    """The week as stored: every day (a missing one is closed), each day's intervals in order; InvalidInput
    naming the day for anything else (an unknown day, a malformed time, an empty or overlapping interval)."""
    if not isinstance(week, dict):
        raise InvalidInput("The week is an object of days (mon … sun), each a list of intervals.", field="week")
    unknown = sorted(set(week) - set(DAYS))
    if unknown:
        raise InvalidInput(f"{unknown[0]!r} is not a day: use mon, tue, wed, thu, fri, sat, sun.", field="week")
    stored = {}
    for day in DAYS:
        intervals = week.get(day, [])
        field = f"week.{day}"
        if not isinstance(intervals, list) or len(intervals) > MAX_INTERVALS_A_DAY:
            raise InvalidInput(f"A day is a list of at most {MAX_INTERVALS_A_DAY} intervals.", field=field)
        spans = []
        for interval in intervals:
            if not (isinstance(interval, list) and len(interval) == 2 and all(isinstance(t, str) for t in interval)):
                raise InvalidInput('Each interval is ["HH:MM", "HH:MM"].', field=field)
            try:
                start, end = minutes_of(interval[0]), minutes_of(interval[1])
            except ValueError as bad:
                raise InvalidInput(f"{bad}.", field=field) from None
            if start >= end or start == MINUTES_A_DAY:
                raise InvalidInput(f"{interval[0]}–{interval[1]} ends before it starts.", field=field)
            spans.append((start, end, interval))
        spans.sort()
        for (_, end, first), (start, _, second) in zip(spans, spans[1:], strict=False):
            if start < end:
                raise InvalidInput(f"{first[0]}–{first[1]} and {second[0]}–{second[1]} overlap.", field=field)
        stored[day] = [interval for _, _, interval in spans]
    return stored


def checked_dates(closed_dates) -> list[str]:
    if not isinstance(closed_dates, list) or len(closed_dates) > MAX_CLOSED_DATES:
        raise InvalidInput(f"Closed dates are a list of at most {MAX_CLOSED_DATES} dates.", field="closed_dates")
    dates = set()
    for value in closed_dates:
        try:
            dates.add(date.fromisoformat(value).isoformat() if isinstance(value, str) and len(value) == 10 else "")
        except ValueError:
            dates.add("")
        if "" in dates:
            raise InvalidInput(f"{value!r} is not a date as YYYY-MM-DD.", field="closed_dates")
    return sorted(dates)


@transaction.atomic
def set_business_hours(
    *,
    clinic: Clinic,
    actor: AbstractBaseUser,
    timezone_name: str,
    week,
    closed_dates,
    away_mode: str,
    away_message: str,
    first_response_target_minutes: int,
    ip: str | None = None,
) -> BusinessHours:
    """Store the clinic's hours, all or nothing. Clinic admins (and support); every open screen of the clinic
    is told, every process reads them again."""
    if not actor.is_superuser:
        membership = membership_for(actor, clinic.pk)
        if membership is None or membership.role != "admin":
            raise NotAMember("Only the clinic's admins set its business hours.")
    if timezone_name not in zoneinfo.available_timezones():
        raise InvalidInput(f"{timezone_name!r} is not an IANA time zone, e.g. America/Sao_Paulo.", field="timezone")
    if not whole_hours(timezone_name):
        raise InvalidInput(
            f"{timezone_name} is not a whole number of hours from UTC: the reports count by the hour.", field="timezone"
        )
    week, closed_dates = checked_week(week), checked_dates(closed_dates)
    if away_mode not in AwayMode.values:
        raise InvalidInput(f"away_mode is one of {', '.join(AwayMode.values)}.", field="away_mode")
    if unstorable(away_message or ""):
        raise InvalidInput("The away message holds a character that cannot be stored.", field="away_message")
    away_message = (away_message or "").strip()
    if len(away_message) > MAX_AWAY_MESSAGE_CHARS:
        raise InvalidInput(f"The away message holds at most {MAX_AWAY_MESSAGE_CHARS} characters.", field="away_message")
    if away_mode != AwayMode.OFF and not away_message:
        raise InvalidInput("Write the away message patients get, or set away_mode to off.", field="away_message")
    if isinstance(first_response_target_minutes, bool) or not isinstance(first_response_target_minutes, int):
        raise InvalidInput(
            "The first-response target is a whole number of minutes.", field="first_response_target_minutes"
        )
    if not 1 <= first_response_target_minutes <= MAX_TARGET_MINUTES:
        raise InvalidInput(
            f"The first-response target is 1 to {MAX_TARGET_MINUTES} minutes.", field="first_response_target_minutes"
        )
    clinic = Clinic.objects.select_for_update(no_key=True).get(pk=clinic.pk)
    stored, created = BusinessHours.objects.select_for_update().get_or_create(clinic=clinic)
    wanted = {
        "week": week,
        "closed_dates": closed_dates,
        "away_mode": away_mode,
        "away_message": away_message,
        "first_response_target_minutes": first_response_target_minutes,
    }
    changed = sorted(field for field, value in wanted.items() if created or getattr(stored, field) != value)
    for field, value in wanted.items():
        setattr(stored, field, value)
    stored.updated_at = timezone.now()
    stored.save()
    if clinic.timezone != timezone_name:
        clinic.timezone = timezone_name
        clinic.save(update_fields=["timezone"])
        changed = sorted([*changed, "timezone"])
    if changed:
        record_audit(
            clinic_id=clinic.pk,
            actor=actor,
            action="clinic.hours_changed",
            obj=clinic,
            detail={"fields": changed},
            ip=ip,
        )
        events.publish_clinic_hours(clinic.pk)
    return stored
