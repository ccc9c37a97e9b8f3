"""The event log: every durable change of a clinic, numbered by a gap-free per-clinic seq."""

from django.conf import settings
from django.db import models
from django.utils import timezone


class Event(models.Model):
    """One durable event; `seq` is the clinic's own counter, so a client that saw N can ask for > N."""

    # Indexed by the unique (clinic, seq) constraint, which leads with it: no index of its own to keep up.
    clinic = models.ForeignKey(
        settings.REALTIME_TENANT_MODEL, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    seq = models.PositiveBigIntegerField()
    type = models.CharField(max_length=40)
    # A plain id, not a foreign key: the log outlives what it speaks of (an erased conversation).
    conversation_id = models.BigIntegerField(null=True, blank=True)
    data = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "evento"
        constraints = [models.UniqueConstraint(fields=["clinic", "seq"], name="event_unique_clinic_seq")]

    def __str__(self) -> str:
        return f"{self.type} #{self.seq} (clinic {self.clinic_id})"
