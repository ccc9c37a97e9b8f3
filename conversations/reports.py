"""The manager's reports (DESIGN §12): figures of a clinic over a range of its days, read from the facts the
actions record (models.reports) — never from messages or patients, so they survive retention and erasure.

A figure counts what happened in the range: conversations opened then, first responses given then (their
time from the patient's message), resolutions then; messages by the hour they were stored. Times are the
clinic's: a range is from the start of its first day to the end of its last, in the clinic's time zone.
"""

import csv
import io
import statistics
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from django.db import connection
from django.db.models import Aggregate, Count, FloatField, Q, QuerySet, Sum
from django.db.models.functions import ExtractHour, ExtractIsoWeekDay, TruncDate

from conversations import clinic_hours, read_cache
from conversations.errors import InvalidInput
from conversations.models import ActivityFact, Clinic, ConversationFact, Membership, Responder

MAX_DAYS = 366
DEFAULT_DAYS = 30
FIRST_YEAR, LAST_YEAR = 2000, 2100  # beyond them no clinic has facts, and a date's arithmetic may overflow
CSV_COLUMNS = (
    "attendance_id",
    "conversation_id",
    "opened_at",
    "waiting_since",
    "first_response_at",
    "first_response_by",
    "first_responder_id",
    "first_responder",
    "first_response_seconds",
    "first_response_business_seconds",
    "staff_replies",
    "assistant_replies",
    "resolved_at",
    "resolved_by_id",
    "resolution_seconds",
    "resolution_business_seconds",
)


class Percentile(Aggregate):
    """PostgreSQL's percentile_cont: the value below which `fraction` of the rows fall (interpolated)."""

    function = "percentile_cont"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression, fraction: float, **extra):
        super().__init__(expression, fraction=float(fraction), **extra)


@dataclass(frozen=True)
class Period:
    """Days `first` to `last` of the clinic, both included, as the UTC instants that bound them."""

    clinic: Clinic
    first: date
    last: date

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, time(0), tzinfo=self.clinic.tzinfo).astimezone(UTC)

    @property
    def end(self) -> datetime:
        return datetime.combine(self.last + timedelta(days=1), time(0), tzinfo=self.clinic.tzinfo).astimezone(UTC)

    def days(self) -> list[date]:
        return [self.first + timedelta(days=n) for n in range((self.last - self.first).days + 1)]


def period_of(clinic: Clinic, first: str | None, last: str | None, *, today: date) -> Period:
    """The range asked for (`YYYY-MM-DD`, both days included); the last DEFAULT_DAYS up to today when not
    given. InvalidInput names the field for a malformed date, a range backwards or longer than MAX_DAYS."""

    def parsed(value: str | None, field: str) -> date | None:
        if value in (None, ""):
            return None
        try:
            if len(value) != 10:
                raise ValueError
            return date.fromisoformat(value)
        except ValueError:
            raise InvalidInput(f"{value!r} is not a date as YYYY-MM-DD.", field=field) from None

    def bounded(day: date | None, field: str) -> date | None:
        if day is not None and not FIRST_YEAR <= day.year <= LAST_YEAR:
            raise InvalidInput(f"A report covers days from {FIRST_YEAR} to {LAST_YEAR}.", field=field)
        return day

    first_day = bounded(parsed(first, "from"), "from")
    last_day = bounded(parsed(last, "to"), "to") or today
    first_day = first_day or last_day - timedelta(days=DEFAULT_DAYS - 1)
    if first_day > last_day:
        raise InvalidInput("The range starts after it ends.", field="from")
    if (last_day - first_day).days >= MAX_DAYS:
        raise InvalidInput(f"A report covers at most {MAX_DAYS} days.", field="to")
    return Period(clinic, first_day, last_day)


def _durations(facts: QuerySet, wall: str, business: str, **counts) -> dict:
    """Count, median and p90 of a duration, in wall time and in business hours (and `counts`, other
    aggregates of the same rows), in one pass over the facts."""
    if connection.vendor == "postgresql":
        found = facts.aggregate(
            count=Count("pk"),
            median_seconds=Percentile(wall, 0.5),
            p90_seconds=Percentile(wall, 0.9),
            business_median_seconds=Percentile(business, 0.5),
            business_p90_seconds=Percentile(business, 0.9),
            **counts,
        )
    else:
        pairs = list(facts.values_list(wall, business))
        walls, businesses = [p[0] for p in pairs], [p[1] for p in pairs]
        found = {
            "count": len(pairs),
            "median_seconds": _percentile(walls, 0.5),
            "p90_seconds": _percentile(walls, 0.9),
            "business_median_seconds": _percentile(businesses, 0.5),
            "business_p90_seconds": _percentile(businesses, 0.9),
        } | (facts.aggregate(**counts) if counts else {})
    return {key: (round(value, 1) if isinstance(value, float) else value) for key, value in found.items()}


def _percentile(values: list[float], fraction: float) -> float | None:
    """As percentile_cont: linear interpolation between the closest ranks."""
    if not values:
        return None
    ordered = sorted(values)
    at = (len(ordered) - 1) * fraction
    low = int(at)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (at - low)


def report(period: Period) -> dict:
    """Every figure of the clinic's report for `period` (the API's JSON, and what the page draws), from the
    read cache while nothing it counts has changed (every message, resolution and change of hours bumps
    the clinic's list: read_cache)."""
    query = (period.first.isoformat(), period.last.isoformat(), period.clinic.timezone)
    return read_cache.cached("report", period.clinic.pk, query, lambda: _report(period))


def _report(period: Period) -> dict:
    clinic, zone = period.clinic, period.clinic.tzinfo
    start, end = period.start, period.end
    hours_of_range = ActivityFact.objects.filter(clinic=clinic, hour__gte=start, hour__lt=end)
    sums = {
        "inbound": Sum("inbound"),
        "staff": Sum("staff_replies"),
        "assistant": Sum("assistant_replies"),
        "automatic": Sum("auto_replies"),
        "opened": Sum("opened"),
        "resolved": Sum("resolved"),
    }
    days = {day: {"opened": 0, "resolved": 0, "inbound": 0, "outbound": 0} for day in period.days()}
    totals = dict.fromkeys(sums, 0)
    by_day = hours_of_range.annotate(day=TruncDate("hour", tzinfo=zone)).values("day").annotate(**sums).order_by()
    for row in by_day:
        for name in totals:
            totals[name] += row[name]
        if (day := days.get(row["day"])) is not None:
            day["opened"] += row["opened"]
            day["resolved"] += row["resolved"]
            day["inbound"] += row["inbound"]
            day["outbound"] += row["staff"] + row["assistant"] + row["automatic"]
    by_hour = [[0] * 24 for _ in range(7)]
    when = hours_of_range.filter(inbound__gt=0).annotate(
        weekday=ExtractIsoWeekDay("hour", tzinfo=zone), hour_of_day=ExtractHour("hour", tzinfo=zone)
    )
    for row in when.values("weekday", "hour_of_day").annotate(n=Sum("inbound")).order_by():
        by_hour[row["weekday"] - 1][row["hour_of_day"]] += row["n"]
    members = {
        row["user_id"]: row
        for row in hours_of_range.exclude(user_id=0)
        .values("user_id")
        .annotate(replies=Sum("staff_replies"), resolved_n=Sum("resolved"))
        .order_by()
    }

    facts = ConversationFact.objects.filter(clinic=clinic)
    answered = facts.filter(first_response_at__gte=start, first_response_at__lt=end)
    resolved = facts.filter(resolved_at__gte=start, resolved_at__lt=end)
    target = clinic_hours.of(clinic.pk).first_response_target_minutes
    first_response = _durations(
        answered,
        "first_response_seconds",
        "first_response_business_seconds",
        within_target=Count("pk", filter=Q(first_response_business_seconds__lte=target * 60)),
        assistant=Count("pk", filter=Q(staff_replies=0)),
        staff=Count("pk", filter=Q(staff_replies__gt=0)),
    )
    answered_by = {"assistant": first_response.pop("assistant"), "staff": first_response.pop("staff")}
    firsts = _first_responses_by_member(answered)
    names = _staff_names(clinic, set(members) | set(firsts))
    by_member = []
    for user_id in sorted(set(members) | set(firsts), key=lambda u: names.get(u, "").lower()):
        count, median = firsts.get(user_id, (0, None))
        by_member.append(
            {
                "user_id": user_id,
                "name": names.get(user_id, "Ex-membro da equipe"),
                "replies": members[user_id]["replies"] if user_id in members else 0,
                "resolved": members[user_id]["resolved_n"] if user_id in members else 0,
                "first_responses": count,
                "first_response_median_seconds": round(median, 1) if median is not None else None,
            }
        )
    return {
        "from": period.first.isoformat(),
        "to": period.last.isoformat(),
        "timezone": clinic.timezone,
        "first_response_target_minutes": target,
        "conversations": {"opened": totals["opened"], "resolved": totals["resolved"]},
        "messages": {
            "inbound": totals["inbound"],
            "outbound": totals["staff"] + totals["assistant"] + totals["automatic"],
            "staff": totals["staff"],
            "assistant": totals["assistant"],
            "automatic": totals["automatic"],
        },
        "first_response": first_response,
        "resolution": _durations(resolved, "resolution_seconds", "resolution_business_seconds"),
        "answered_by": answered_by,
        "by_member": by_member,
        "by_hour": by_hour,
        "by_day": [{"date": day.isoformat(), **counts} for day, counts in days.items()],
    }


def _first_responses_by_member(answered: QuerySet) -> dict[int, tuple[int, float]]:
    """Each staff member's first responses in the range: how many, and their median (wall time)."""
    by_staff = answered.filter(first_response_by=Responder.STAFF, first_responder_id__isnull=False)
    if connection.vendor == "postgresql":
        rows = by_staff.values("first_responder_id").annotate(
            n=Count("pk"), median=Percentile("first_response_seconds", 0.5)
        )
        return {row["first_responder_id"]: (row["n"], row["median"]) for row in rows.order_by()}
    grouped: dict[int, list[float]] = {}
    for user_id, seconds in by_staff.values_list("first_responder_id", "first_response_seconds"):
        grouped.setdefault(user_id, []).append(seconds)
    return {user_id: (len(values), statistics.median(values)) for user_id, values in grouped.items()}


def _staff_names(clinic: Clinic, user_ids: set[int] | None) -> dict[int, str]:
    """Names of the clinic's staff among `user_ids` (None: all; someone who left the clinic has none here)."""
    names = {}
    memberships = Membership.objects.filter(clinic=clinic).select_related("user")
    if user_ids is not None:
        memberships = memberships.filter(user_id__in=user_ids)
    for membership in memberships:
        names[membership.user_id] = membership.user.get_full_name() or membership.user.get_username()
    return names


CSV_PAGE = 2000


def csv_page(period: Period, after: tuple | None = None) -> tuple[str, tuple | None]:
    """One page of the report's CSV (the header first, when `after` is None): a row for each attendance
    that began, was first answered or was resolved in the range (what the figures count) — ids, times (the
    clinic's), durations in seconds and who answered; never a message's text, never a patient's name or
    number — and where the next page starts (None: the end)."""
    zone = period.clinic.tzinfo
    names = _staff_names(period.clinic, None)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    if after is None:
        writer.writerow(CSV_COLUMNS)
    start, end = period.start, period.end
    in_range = (
        Q(opened_at__gte=start, opened_at__lt=end)
        | Q(first_response_at__gte=start, first_response_at__lt=end)
        | Q(resolved_at__gte=start, resolved_at__lt=end)
    )
    facts = ConversationFact.objects.filter(in_range, clinic=period.clinic).order_by("opened_at", "pk")
    if after is not None:
        facts = facts.filter(Q(opened_at__gt=after[0]) | Q(opened_at=after[0], pk__gt=after[1]))
    columns = [c if c != "attendance_id" else "pk" for c in CSV_COLUMNS if c != "first_responder"]
    rows = list(facts.values_list(*columns)[:CSV_PAGE])
    at = columns.index("first_responder_id")
    for row in rows:
        values = [_shown(value, zone) for value in row]
        values.insert(at + 1, names.get(row[at], "") if row[at] else "")
        writer.writerow(values)
    last = (rows[-1][columns.index("opened_at")], rows[-1][0]) if len(rows) == CSV_PAGE else None
    return buffer.getvalue(), last


def _shown(value, zone):
    if isinstance(value, datetime):
        return value.astimezone(zone).isoformat()
    if isinstance(value, float):
        return f"{value:.0f}"
    return "" if value is None else value


def csv_pages(period: Period) -> Iterator[str]:
    """The report's CSV, page by page (a server-side iteration would hold a cursor open between pages)."""
    page, after = csv_page(period)
    yield page
    while after is not None:
        page, after = csv_page(period, after)
        yield page


async def acsv_pages(period: Period):
    """`csv_pages` for the event loop: each page read on Django's thread, so the file streams to the client
    as it is read instead of being built whole first."""
    from asgiref.sync import sync_to_async

    read = sync_to_async(csv_page)
    page, after = await read(period)
    yield page
    while after is not None:
        page, after = await read(period, after)
        yield page
