"""Deliveries to the provider, attempt by attempt, and provider statuses waiting for their message."""

from django.db import models
from django.utils import timezone

from conversations.models.clinics import Clinic
from conversations.models.messages import Message


class DeliveryAttempt(models.Model):
    """One call to the provider for an outbound message, recorded *before* the call is made.

    An attempt left `in_flight` means the process died mid-call: the provider may have the message, so
    it is never sent again (WhatsApp has no idempotency key; a patient must not get it twice).
    """

    class Outcome(models.TextChoices):
        IN_FLIGHT = "in_flight", "Em andamento"
        SENT = "sent", "Aceita pelo provedor"
        NOT_SENT = "not_sent", "Não enviada (erro temporário)"
        REJECTED = "rejected", "Recusada pelo provedor"
        UNKNOWN = "unknown", "Resultado desconhecido"

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="delivery_attempts")
    number = models.PositiveSmallIntegerField()
    provider = models.CharField(max_length=32)
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.IN_FLIGHT)
    detail = models.TextField(blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "tentativa de entrega"
        verbose_name_plural = "tentativas de entrega"
        constraints = [models.UniqueConstraint(fields=["message", "number"], name="delivery_attempt_unique_number")]
        # /metrics reads the last minutes' outcomes at every scrape (alerts on failing deliveries).
        indexes = [models.Index(fields=["finished_at"], name="delivery_attempt_finished")]

    def __str__(self) -> str:
        return f"#{self.number} of message {self.message_id}: {self.outcome}"


class PendingStatus(models.Model):
    """A provider status that arrived before its message was known (Meta is faster than our write)."""

    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="+")
    external_id = models.CharField(max_length=255)
    status = models.CharField(max_length=10)
    error = models.TextField(blank=True)
    happened_at = models.DateTimeField()
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "status pendente"
        verbose_name_plural = "status pendentes"
        constraints = [models.UniqueConstraint(fields=["clinic", "external_id", "status"], name="pending_status_once")]
        indexes = [models.Index(fields=["clinic", "received_at"], name="pending_status_age")]

    def __str__(self) -> str:
        return f"{self.status} for {self.external_id}"
