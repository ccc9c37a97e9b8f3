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
from django.db.models import Aggregate, Count, F, FloatField, Q, QuerySet, Sum
from django.db.models.functions import TruncDate

from conversations import clinic_hours
from conversations.errors import InvalidInput
from conversations.models import ActivityFact, Clinic, ConversationFact, Membership, Responder

MAX_DAYS = 366
DEFAULT_DAYS = 30
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

    last_day = parsed(last, "to") or today
    first_day = parsed(first, "from") or last_day - timedelta(days=DEFAULT_DAYS - 1)
    if first_day > last_day:
        raise InvalidInput("The range starts after it ends.", field="from")
    if (last_day - first_day).days >= MAX_DAYS:
        raise InvalidInput(f"A report covers at most {MAX_DAYS} days.", field="to")
    return Period(clinic, first_day, last_day)


def _durations(facts: QuerySet, wall: str, business: str) -> dict:
    """Count, median and p90 of a duration, in wall time and in business hours."""
    if connection.vendor == "postgresql":
        found = facts.aggregate(
            count=Count("pk"),
            median_seconds=Percentile(wall, 0.5),
            p90_seconds=Percentile(wall, 0.9),
            business_median_seconds=Percentile(business, 0.5),
            business_p90_seconds=Percentile(business, 0.9),
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
        }
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


def _by_day(facts: QuerySet, field: str, zone) -> dict[date, int]:
    rows = facts.annotate(day=TruncDate(field, tzinfo=zone)).values("day").annotate(n=Count("pk")).order_by()
    return {row["day"]: row["n"] for row in rows}


def report(period: Period) -> dict:
    """Every figure of the clinic's report for `period` (the API's JSON, and what the page draws)."""
    clinic, zone = period.clinic, period.clinic.tzinfo
    start, end = period.start, period.end
    facts = ConversationFact.objects.filter(clinic=clinic)
    opened = facts.filter(opened_at__gte=start, opened_at__lt=end)
    answered = facts.filter(first_response_at__gte=start, first_response_at__lt=end)
    resolved = facts.filter(resolved_at__gte=start, resolved_at__lt=end)

    days = {day: {"opened": 0, "resolved": 0, "inbound": 0, "outbound": 0} for day in period.days()}
    by_hour = [[0] * 24 for _ in range(7)]
    members: dict[int, dict] = {}
    totals = {"inbound": 0, "staff": 0, "assistant": 0, "automatic": 0}
    activity = (
        ActivityFact.objects.filter(clinic=clinic, hour__gte=start, hour__lt=end)
        .values("hour", "user_id")
        .annotate(
            inbound_n=Sum("inbound"),
            staff_n=Sum("staff_replies"),
            assistant_n=Sum("assistant_replies"),
            auto_n=Sum("auto_replies"),
            resolved_n=Sum("resolved"),
        )
        .order_by()
    )
    for row in activity:
        local = row["hour"].astimezone(zone)
        out = row["staff_n"] + row["assistant_n"] + row["auto_n"]
        day = days.get(local.date())
        if day is not None:
            day["inbound"] += row["inbound_n"]
            day["outbound"] += out
        by_hour[local.weekday()][local.hour] += row["inbound_n"]
        totals["inbound"] += row["inbound_n"]
        totals["staff"] += row["staff_n"]
        totals["assistant"] += row["assistant_n"]
        totals["automatic"] += row["auto_n"]
        if row["user_id"]:
            member = members.setdefault(row["user_id"], {"replies": 0, "resolved": 0})
            member["replies"] += row["staff_n"]
            member["resolved"] += row["resolved_n"]
    for day, n in _by_day(opened, "opened_at", zone).items():
        if day in days:
            days[day]["opened"] += n
    for day, n in _by_day(resolved, "resolved_at", zone).items():
        if day in days:
            days[day]["resolved"] += n

    by_staff = answered.filter(first_response_by=Responder.STAFF, first_responder_id__isnull=False)
    if connection.vendor == "postgresql":
        medians = by_staff.values("first_responder_id").annotate(
            n=Count("pk"), median=Percentile("first_response_seconds", 0.5)
        )
        firsts = {row["first_responder_id"]: (row["n"], row["median"]) for row in medians.order_by()}
    else:
        grouped: dict[int, list[float]] = {}
        for user_id, seconds in by_staff.values_list("first_responder_id", "first_response_seconds"):
            grouped.setdefault(user_id, []).append(seconds)
        firsts = {user_id: (len(values), statistics.median(values)) for user_id, values in grouped.items()}
    names = _staff_names(clinic, set(members) | set(firsts))
    by_member = []
    for user_id in sorted(set(members) | set(firsts), key=lambda u: names.get(u, "").lower()):
        count, median = firsts.get(user_id, (0, None))
        by_member.append(
            {
                "user_id": user_id,
                "name": names.get(user_id, "Ex-membro da equipe"),
                "replies": members.get(user_id, {}).get("replies", 0),
                "resolved": members.get(user_id, {}).get("resolved", 0),
                "first_responses": count,
                "first_response_median_seconds": round(median, 1) if median is not None else None,
            }
        )
    answered_by = answered.aggregate(
        assistant=Count("pk", filter=Q(staff_replies=0)), staff=Count("pk", filter=Q(staff_replies__gt=0))
    )
    target = clinic_hours.of(clinic.pk).first_response_target_minutes
    first_response = _durations(answered, "first_response_seconds", "first_response_business_seconds")
    first_response["within_target"] = answered.filter(first_response_business_seconds__lte=target * 60).count()
    return {
        "from": period.first.isoformat(),
        "to": period.last.isoformat(),
        "timezone": clinic.timezone,
        "first_response_target_minutes": target,
        "conversations": {"opened": opened.count(), "resolved": resolved.count()},
        "messages": {
            "inbound": totals["inbound"],
            "outbound": totals["staff"] + totals["assistant"] + totals["automatic"],
            "staff": totals["staff"],
            "assistant": totals["assistant"],
            "automatic": totals["automatic"],
        },
        "first_response": first_response,
        "resolution": _durations(resolved, "resolution_seconds", "resolution_business_seconds"),
        "answered_by": {"assistant": answered_by["assistant"], "staff": answered_by["staff"]},
        "by_member": by_member,
        "by_hour": by_hour,
        "by_day": [{"date": day.isoformat(), **counts} for day, counts in days.items()],
    }


def _staff_names(clinic: Clinic, user_ids: set[int]) -> dict[int, str]:
    """Names of the clinic's staff among `user_ids` (someone who left the clinic keeps no name here)."""
    names = {}
    for membership in Membership.objects.filter(clinic=clinic, user_id__in=user_ids).select_related("user"):
        names[membership.user_id] = membership.user.get_full_name() or membership.user.get_username()
    return names


def csv_lines(period: Period) -> Iterator[str]:
    """The report's CSV: one row per attendance opened in the range — ids, times (the clinic's), durations
    in seconds and who answered; never a message's text, never a patient's name or number."""
    zone = period.clinic.tzinfo
    names = {m.user_id: m.user.get_full_name() or m.user.get_username() for m in period.clinic.memberships.all()}
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def line(values) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(values)
        return buffer.getvalue()

    def shown(value):
        if isinstance(value, datetime):
            return value.astimezone(zone).isoformat()
        if isinstance(value, float):
            return f"{value:.0f}"
        return "" if value is None else value

    yield line(CSV_COLUMNS)
    facts = (
        ConversationFact.objects.filter(clinic=period.clinic, opened_at__gte=period.start, opened_at__lt=period.end)
        .annotate(attendance_id=F("pk"))
        .order_by("opened_at", "pk")
    )
    for fact in facts.iterator(chunk_size=2000):
        responder = names.get(fact.first_responder_id, "") if fact.first_responder_id else ""
        values = {**{c: getattr(fact, c, None) for c in CSV_COLUMNS}, "first_responder": responder}
        yield line([shown(values[c]) for c in CSV_COLUMNS])
