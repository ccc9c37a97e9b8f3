"""Conversations, the actions shown in their timelines, and each user's read marker."""

from django.conf import settings
from django.db import models
from django.db.models import F
from django.db.models.functions import Coalesce
from django.utils import timezone

from conversations.models.clinics import Clinic
from conversations.models.contacts import Contact


class ConversationStatus(models.TextChoices):
    OPEN = "open", "Aberta"
    PENDING = "pending", "Pendente"
    RESOLVED = "resolved", "Resolvida"


class AnsweredBy(models.TextChoices):
    """Who answers the patient: the clinic's n8n assistant, or its staff (the assistant paused)."""

    ASSISTANT = "assistant", "Assistente"
    STAFF = "staff", "Equipe"


class Channel(models.TextChoices):
    WHATSAPP = "whatsapp", "WhatsApp"


class Label(models.Model):
    """A clinic's label for conversations ("Convênio", "Retorno"), with a colour to tell it at a glance."""

    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="labels")
    name = models.CharField(max_length=40)
    color = models.CharField(max_length=7, help_text="#rrggbb")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "etiqueta"
        constraints = [models.UniqueConstraint(fields=["clinic", "name"], name="label_unique_name")]

    def __str__(self) -> str:
        return self.name


class Conversation(models.Model):
    """The thread between a clinic and one contact on one channel."""

    Status = ConversationStatus
    Channel = Channel
    AnsweredBy = AnsweredBy

    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="conversations")
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="conversations")
    channel = models.CharField(max_length=20, choices=Channel.choices, default=Channel.WHATSAPP)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="assigned_conversations",
    )
    last_message_at = models.DateTimeField(null=True, blank=True)
    # Staff replying (or "Assumir") take the conversation from the assistant; "Devolver" gives it back.
    answered_by = models.CharField(
        max_length=10, choices=AnsweredBy.choices, default=AnsweredBy.ASSISTANT, db_default=AnsweredBy.ASSISTANT
    )
    labels = models.ManyToManyField(Label, blank=True, related_name="conversations")
    # Snoozed: out of the open list until then (a scheduled task brings it back), or until the patient writes.
    snoozed_until = models.DateTimeField(null=True, blank=True)
    # The clinic's WhatsApp number (its phone_number_id) the patient last wrote to: replies go from it.
    # Empty for threads no WhatsApp message started (the clinic's first number is used).
    whatsapp_number_id = models.CharField(max_length=64, blank=True, default="", db_default="")
    # Since when the patient waits for the clinic's answer: their first message after its last reply (staff's
    # or the assistant's; an automatic away message is no answer). None while nothing awaits one.
    awaiting_since = models.DateTimeField(null=True, blank=True)
    # The closed period (by the time it ends: the clinic's next opening) whose away message this conversation
    # got: one per closed period, whatever restarts or messages follow.
    away_sent_for = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "conversa"
        constraints = [
            # One thread a contact can write into per channel; a resolved one is reopened, not duplicated.
            models.UniqueConstraint(
                fields=["contact", "channel"],
                condition=~models.Q(status="resolved"),
                name="conversation_one_unresolved_per_contact_channel",
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=ConversationStatus.values), name="conversation_status_valid"
            ),
        ]
        indexes = [
            # Exactly the inbox's order (a conversation without messages sorts by its creation), so a page
            # of the list is an index range scan, not a sort of every conversation of the clinic.
            models.Index(
                F("clinic"),
                Coalesce("last_message_at", "created_at").desc(),
                F("id").desc(),
                name="conversation_activity",
            ),
            models.Index(fields=["clinic", "status"], name="conversation_clinic_status"),
            # The list's "Aguardando resposta": the longest wait first.
            models.Index(
                fields=["clinic", "awaiting_since"],
                condition=models.Q(awaiting_since__isnull=False),
                name="conversation_awaiting",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.contact}"


class ConversationAction(models.Model):
    """Something done about a conversation outside the chat (an appointment booked), shown in its timeline."""

    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="+")
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="actions")
    action_type = models.SlugField(max_length=64, help_text="e.g. appointment_created, appointment_status_changed")
    action_data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "ação da conversa"
        verbose_name_plural = "ações das conversas"
        indexes = [models.Index(fields=["conversation", "-created_at"], name="action_timeline")]

    def __str__(self) -> str:
        return f"{self.action_type} on #{self.conversation_id}"


class ReadMarker(models.Model):
    """How far one user has read one conversation; unread = inbound messages after it."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="read_markers")
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="read_markers")
    last_read_message = models.ForeignKey(
        "conversations.Message", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "marcador de leitura"
        verbose_name_plural = "marcadores de leitura"
        constraints = [
            models.UniqueConstraint(fields=["user", "conversation"], name="readmarker_unique_user_conversation")
        ]

    def __str__(self) -> str:
        return f"{self.user} read #{self.conversation_id} up to {self.last_read_message_id}"


class Note(models.Model):
    """Staff's internal note in a conversation's timeline: never sent to the patient or any provider, never
    the patient's unread or last message. `mentions` are the colleagues it names (@name), who are told.
    A `suggestion` is the assistant's answer to a conversation staff have taken: kept here, not sent."""

    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="+")
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="notes")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    content = models.TextField()
    suggestion = models.BooleanField(default=False, db_default=False)
    # A suggestion's id in the automation that sent it (its external_id): a retry is kept once.
    source_id = models.CharField(max_length=255, blank=True, default="", db_default="")
    mentions = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "nota interna"
        verbose_name_plural = "notas internas"
        indexes = [models.Index(fields=["conversation", "created_at"], name="note_timeline")]
        constraints = [
            models.UniqueConstraint(
                fields=["clinic", "source_id"], condition=~models.Q(source_id=""), name="note_unique_source_id"
            )
        ]

    def __str__(self) -> str:
        return f"note #{self.pk} on #{self.conversation_id}"
