"""The facts the reports count (DESIGN §12: reports read facts, never patients): written by the actions as
things happen, holding ids, times and durations only — no text, no phone — so they outlive a retention purge
and a patient's erasure, and a report of any range reads a few small rows."""

from django.db import models

from conversations.models.clinics import Clinic

# Inbound counts of one clinic hour are spread over this many rows (by conversation), so that patients
# writing at once do not all wait on one row's lock; a report sums them.
ACTIVITY_SHARDS = 8


# What an attendance records of its first response.
FIRST_RESPONSE_FIELDS = (
    "waiting_since",
    "first_response_at",
    "first_response_by",
    "first_responder_id",
    "first_response_seconds",
    "first_response_business_seconds",
)


class Responder(models.TextChoices):
    STAFF = "staff", "Equipe"
    ASSISTANT = "assistant", "Assistente"


class ConversationFact(models.Model):
    """One attendance of a conversation, from its opening (or reopening) to its resolution: when the patient
    first waited for an answer, when and by whom that was answered, and when it was resolved, with each
    duration in wall time and in the clinic's business hours."""

    Responder = Responder

    # Indexed by the indexes below, which lead with it.
    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="+", db_index=False)
    conversation_id = models.BigIntegerField()  # no foreign key: the fact outlives the conversation
    opened_at = models.DateTimeField()
    waiting_since = models.DateTimeField(null=True, blank=True)  # the patient's message the first reply answered
    first_response_at = models.DateTimeField(null=True, blank=True)
    first_response_by = models.CharField(max_length=10, choices=Responder.choices, blank=True, default="")
    first_responder_id = models.BigIntegerField(null=True, blank=True)  # the staff member's user id
    first_response_seconds = models.FloatField(null=True, blank=True)
    first_response_business_seconds = models.FloatField(null=True, blank=True)
    staff_replies = models.PositiveIntegerField(default=0)
    assistant_replies = models.PositiveIntegerField(default=0)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by_id = models.BigIntegerField(null=True, blank=True)  # the staff member's user id
    resolution_seconds = models.FloatField(null=True, blank=True)
    resolution_business_seconds = models.FloatField(null=True, blank=True)

    class Meta:
        verbose_name = "fato de atendimento"
        verbose_name_plural = "fatos de atendimento"
        indexes = [
            models.Index(fields=["clinic", "opened_at"], name="fact_clinic_opened"),
            models.Index(
                fields=["clinic", "first_response_at"],
                condition=models.Q(first_response_at__isnull=False),
                name="fact_clinic_first_response",
            ),
            models.Index(
                fields=["clinic", "resolved_at"],
                condition=models.Q(resolved_at__isnull=False),
                name="fact_clinic_resolved",
            ),
            # The attendance a reply or a resolution belongs to: the conversation's unresolved one.
            models.Index(
                fields=["conversation_id"], condition=models.Q(resolved_at__isnull=True), name="fact_conversation_open"
            ),
        ]

    def __str__(self) -> str:
        return f"conversa #{self.conversation_id} aberta em {self.opened_at:%Y-%m-%d %H:%M}"


class ActivityFact(models.Model):
    """One clinic hour (UTC), counted as things happen: the patients' messages (`inbound`), the replies of one
    staff member (`user_id`) or of the assistant and the automatic replies (`user_id` 0), the attendances
    that began (`opened`), and the conversations each staff member resolved: a report's counts by day,
    weekday × hour and person read these few rows, never the attendances."""

    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="+", db_index=False)  # see below
    hour = models.DateTimeField()  # the hour's start, UTC
    user_id = models.BigIntegerField(default=0)  # a staff member's user id; 0 for everything else
    shard = models.PositiveSmallIntegerField(default=0)  # 0 to ACTIVITY_SHARDS - 1
    inbound = models.PositiveIntegerField(default=0)
    staff_replies = models.PositiveIntegerField(default=0)
    assistant_replies = models.PositiveIntegerField(default=0)
    auto_replies = models.PositiveIntegerField(default=0)
    opened = models.PositiveIntegerField(default=0)
    resolved = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name = "fato de atividade"
        verbose_name_plural = "fatos de atividade"
        constraints = [
            models.UniqueConstraint(fields=["clinic", "hour", "user_id", "shard"], name="activity_fact_once")
        ]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H}h de {self.clinic_id}"
