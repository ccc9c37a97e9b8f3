"""A clinic's business hours as a rule (DESIGN §12): open or closed at a moment, when that next changes, and
how many seconds of a span fall in open hours. Pure: `Hours` is built from the clinic's stored hours
(models.BusinessHours) and this module reads no database, so the event loop may use it too.

A week is seven lists of intervals in the clinic's time zone ("08:00"–"12:00", "13:30"–"18:00"; "24:00"
ends a day); a closed date closes the whole day whatever its weekday says.
"""

import functools
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MINUTES_A_DAY = 24 * 60
LOOK_AHEAD_DAYS = 400  # the next change is looked for this far: past it, the clinic's hours never change
EPSILON = timedelta(microseconds=1)


@dataclass(frozen=True)
class Hours:
    timezone: str
    week: tuple[tuple[tuple[int, int], ...], ...]  # per weekday (Monday first): (start, end) minutes of the day
    closed_dates: frozenset[date]

    @property
    def tzinfo(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)

    @property
    def never_open(self) -> bool:
        return not any(self.week)

    @property
    def always_open(self) -> bool:
        return not self.closed_dates and all(day == ((0, MINUTES_A_DAY),) for day in self.week)


def whole_hours(timezone: str) -> bool:
    """Whether the zone is a whole number of hours from UTC, summer and winter (the reports count by the
    hour: a zone such as Asia/Kolkata, +5:30, would put messages in the wrong hour)."""
    zone = zoneinfo.ZoneInfo(timezone)
    year = datetime.now(UTC).year
    offsets = (datetime(year, month, 1, tzinfo=zone).utcoffset() for month in (1, 7))
    return all(offset is not None and offset.total_seconds() % 3600 == 0 for offset in offsets)


def minutes_of(text: str) -> int:
    """'08:30' → 510; '24:00' → 1440. ValueError for anything else."""
    hours, _, minutes = text.partition(":")
    if len(text) != 5 or not hours.isdigit() or not minutes.isdigit():
        raise ValueError(f"{text!r} is not a time as HH:MM")
    value = int(hours) * 60 + int(minutes)
    if int(minutes) > 59 or value > MINUTES_A_DAY:
        raise ValueError(f"{text!r} is not a time of the day (00:00 to 24:00)")
    return value


def text_of(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def hours_of(timezone: str, week: dict[str, list[list[str]]], closed_dates: list[str]) -> Hours:
    """The rule from the stored form (checked when it was stored: conversations.actions.hours)."""
    days = tuple(tuple((minutes_of(start), minutes_of(end)) for start, end in week.get(day, [])) for day in DAYS)
    return Hours(timezone, days, frozenset(date.fromisoformat(d) for d in closed_dates))


@functools.lru_cache(maxsize=8192)
def _intervals_of(hours: Hours, day: date) -> tuple[tuple[datetime, datetime], ...]:
    """The open intervals of one local day, as aware UTC times (kept: a list of waits walks the same days)."""
    if day in hours.closed_dates:
        return ()
    zone = hours.tzinfo
    intervals = []
    for start, end in hours.week[day.weekday()]:
        opens = datetime.combine(day, time(start // 60, start % 60), tzinfo=zone)
        closes = (
            datetime.combine(day + timedelta(days=1), time(0, 0), tzinfo=zone)
            if end == MINUTES_A_DAY
            else datetime.combine(day, time(end // 60, end % 60), tzinfo=zone)
        )
        intervals.append((opens.astimezone(UTC), closes.astimezone(UTC)))
    return tuple(intervals)


def _days(hours: Hours, start: datetime, end: datetime):
    day = start.astimezone(hours.tzinfo).date() - timedelta(days=1)  # an interval may start the day before
    last = end.astimezone(hours.tzinfo).date()
    while day <= last:
        yield day
        day += timedelta(days=1)


def is_open(hours: Hours, at: datetime) -> bool:
    return any(opens <= at < closes for day in _days(hours, at, at) for opens, closes in _intervals_of(hours, day))


def next_change(hours: Hours, at: datetime) -> datetime | None:
    """When the clinic next opens (if closed at `at`) or closes (if open), or None if it never does."""
    if hours.never_open or hours.always_open:
        return None
    now_open = is_open(hours, at)
    day = at.astimezone(hours.tzinfo).date() - timedelta(days=1)
    for offset in range(LOOK_AHEAD_DAYS + 2):  # day by day: a day's edges all come after the day before's
        edges = sorted(edge for pair in _intervals_of(hours, day + timedelta(days=offset)) for edge in pair)
        for edge in edges:
            if edge > at and is_open(hours, edge) != now_open:
                return edge
    return None


def last_change(hours: Hours, at: datetime) -> datetime | None:
    """When the clinic last opened (if open at `at`) or closed (if closed), or None if it never did within
    LOOK_AHEAD_DAYS: the start of the period `at` falls in."""
    if hours.never_open or hours.always_open:
        return None
    now_open = is_open(hours, at)
    day = at.astimezone(hours.tzinfo).date() + timedelta(days=1)
    for offset in range(LOOK_AHEAD_DAYS + 2):
        edges = sorted(
            (edge for pair in _intervals_of(hours, day - timedelta(days=offset)) for edge in pair), reverse=True
        )
        for edge in edges:
            if edge <= at and is_open(hours, edge) == now_open and is_open(hours, edge - EPSILON) != now_open:
                return edge
    return None


def business_seconds(hours: Hours, start: datetime, end: datetime) -> float:
    """Seconds of [start, end) that fall in the clinic's open hours."""
    if end <= start:
        return 0.0
    total = 0.0
    for day in _days(hours, start, end):
        for opens, closes in _intervals_of(hours, day):
            overlap = (min(end, closes) - max(start, opens)).total_seconds()
            if overlap > 0:
                total += overlap
    return total


def business_deadline(hours: Hours, start: datetime, seconds: float) -> datetime | None:
    """The moment `seconds` of open time have passed since `start` (a wait reaching the clinic's target), or
    None if the clinic does not open for that long within LOOK_AHEAD_DAYS."""
    left = seconds
    day = start.astimezone(hours.tzinfo).date() - timedelta(days=1)
    for offset in range(LOOK_AHEAD_DAYS + 2):
        for opens, closes in _intervals_of(hours, day + timedelta(days=offset)):
            begin = max(opens, start)
            if closes <= begin:
                continue
            span = (closes - begin).total_seconds()
            if span >= left:
                return begin + timedelta(seconds=left)
            left -= span
    return None
