"""Showing a UTC time in the clinic's own time zone: "14:30" today, "24 de jun" on an earlier day."""

import re
import unicodedata
from datetime import datetime

from django import template
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from conversations.models import Clinic
from conversations.search import START, STOP

register = template.Library()

MONTHS = ("jan", "fev", "mar", "abr", "mai", "jun", "jul", "ago", "set", "out", "nov", "dez")


def format_clinic_time(value: datetime | None, clinic: Clinic, now: datetime | None = None) -> str:
    if value is None:
        return ""
    local = timezone.localtime(value, clinic.tzinfo)
    today = timezone.localtime(now or timezone.now(), clinic.tzinfo).date()
    if local.date() == today:
        return f"{local:%H:%M}"
    label = f"{local.day} de {MONTHS[local.month - 1]}"
    return label if local.year == today.year else f"{label} de {local.year}"


@register.filter
def clinic_time(value: datetime | None, clinic: Clinic) -> str:
    return format_clinic_time(value, clinic)


@register.filter
def clinic_clock(value: datetime | None, clinic: Clinic) -> str:
    """The time of day in the clinic's zone, "14:30": a bubble's time, whatever its day."""
    return f"{timezone.localtime(value, clinic.tzinfo):%H:%M}" if value else ""


@register.filter
def clinic_date(value: datetime | None, clinic: Clinic) -> str:
    """The clinic's calendar day, as an ISO date (for grouping by day)."""
    return timezone.localtime(value, clinic.tzinfo).date().isoformat() if value else ""


@register.filter
def clinic_day(value: datetime | None, clinic: Clinic) -> str:
    """A day separator of the timeline: "Hoje", "Ontem", or "24 de junho de 2026"."""
    if value is None:
        return ""
    day = timezone.localtime(value, clinic.tzinfo).date()
    today = timezone.localtime(timezone.now(), clinic.tzinfo).date()
    if day == today:
        return "Hoje"
    if (today - day).days == 1:
        return "Ontem"
    return f"{day.day} de {FULL_MONTHS[day.month - 1]} de {day.year}"


FULL_MONTHS = (
    "janeiro",
    "fevereiro",
    "março",
    "abril",
    "maio",
    "junho",
    "julho",
    "agosto",
    "setembro",
    "outubro",
    "novembro",
    "dezembro",
)


@register.filter
def lookup(mapping: dict, key):
    """`mapping|lookup:key` — a label from a dict the view hands over (status and tick labels)."""
    return mapping.get(key, "") if isinstance(mapping, dict) else ""


PREVIEW_CHARS = 90


@register.filter
def preview(text: str | None) -> str:
    """A list row's preview of a message: at most 90 characters (Unicode code points, after NFC), the last
    one "…" when cut. static/js/list.js cuts a patient's new text the same way, so a row it updates from the
    stream reads as the server renders it (Django's truncatechars would not: its ellipsis is translated, and
    it leaves combining characters uncounted, by a rule the browser has no table for)."""
    text = unicodedata.normalize("NFC", text or "")
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"


@register.filter
def file_size(size: int | None) -> str:
    if not size:
        return ""
    for unit in ("B", "KB", "MB"):
        if size < 1024 or unit == "MB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}".replace(".", ",")
        size /= 1024
    return ""


@register.filter
def web_url(value) -> str:
    """A link from outside (an ad's URL) only when it is http(s); anything else is not a link."""
    text = str(value or "")
    return text if text.startswith(("https://", "http://")) else ""


@register.filter
def first_word(value) -> str:
    """ "Maria Souza" → "Maria": how a message greets the patient."""
    return str(value or "").split(" ")[0]


@register.filter
def search_marks(marked: str) -> str:
    """A search snippet as HTML: its text escaped, the words found in <mark>."""
    chunks = re.split(f"{START}(.*?){STOP}", marked, flags=re.DOTALL)  # text, found, text, found, …
    parts = [format_html("<mark>{}</mark>", chunk) if n % 2 else chunk for n, chunk in enumerate(chunks)]
    return format_html_join("", "{}", ((part,) for part in parts))


@register.filter
def duration_clock(seconds) -> str:
    """0:07, 1:32: how long a voice note plays."""
    try:
        total = max(0, round(float(seconds)))
    except (TypeError, ValueError):
        return ""
    return f"{total // 60}:{total % 60:02d}"
