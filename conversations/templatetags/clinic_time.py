"""Showing a UTC time in the clinic's own time zone: "14:30" today, "24 de jun" on an earlier day."""

from datetime import datetime

from django import template
from django.utils import timezone

from conversations.models import Clinic

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
