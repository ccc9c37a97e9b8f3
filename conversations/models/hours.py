"""A clinic's business hours: when it answers, what a patient writing outside them gets, and how soon it aims
to answer (conversations.hours reads them as a rule)."""

from django.db import models
from django.utils import timezone

from conversations.models.clinics import Clinic

DEFAULT_AWAY_MESSAGE = (
    "Olá! Recebemos sua mensagem, mas estamos fora do horário de atendimento agora. Responderemos assim que abrirmos."
)


def default_week() -> dict:
    """Monday to Friday 8:00 to 18:00, Saturday 8:00 to 12:00: a usual clinic's, until its admin sets its own."""
    weekdays = {day: [["08:00", "18:00"]] for day in ("mon", "tue", "wed", "thu", "fri")}
    return weekdays | {"sat": [["08:00", "12:00"]], "sun": []}


class AwayMode(models.TextChoices):
    OFF = "off", "Nunca"
    STAFF = "staff", "Só nas conversas que a equipe atende"
    ALWAYS = "always", "Sempre"


class BusinessHours(models.Model):
    """The clinic's week of open intervals and closed dates (in the clinic's time zone), its away message and
    when it is sent, and its first-response target."""

    AwayMode = AwayMode

    clinic = models.OneToOneField(Clinic, on_delete=models.CASCADE, related_name="business_hours")
    week = models.JSONField(default=default_week)
    closed_dates = models.JSONField(default=list, blank=True)
    away_mode = models.CharField(max_length=10, choices=AwayMode.choices, default=AwayMode.OFF)
    away_message = models.TextField(default=DEFAULT_AWAY_MESSAGE, blank=True)
    first_response_target_minutes = models.PositiveIntegerField(default=15)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "horário de atendimento"
        verbose_name_plural = "horários de atendimento"
        constraints = [
            models.CheckConstraint(condition=models.Q(away_mode__in=AwayMode.values), name="hours_away_mode_valid"),
            models.CheckConstraint(
                condition=models.Q(first_response_target_minutes__gte=1), name="hours_target_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"Horário de {self.clinic}"
