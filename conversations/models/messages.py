"""Messages, in and out, and their attachments."""

from django.conf import settings
from django.db import models
from django.utils import timezone

from conversations.models.clinics import Clinic
from conversations.models.conversations import Conversation


class Direction(models.TextChoices):
    INBOUND = "inbound", "Recebida"
    OUTBOUND = "outbound", "Enviada"


class SenderType(models.TextChoices):
    PATIENT = "patient", "Paciente"
    PROFESSIONAL = "professional", "Equipe"
    AI = "ai", "Assistente"
    SYSTEM = "system", "Sistema"


class MessageType(models.TextChoices):
    TEXT = "text", "Texto"
    IMAGE = "image", "Imagem"
    VIDEO = "video", "Vídeo"
    AUDIO = "audio", "Áudio"
    DOCUMENT = "document", "Documento"
    LOCATION = "location", "Localização"
    STICKER = "sticker", "Figurinha"
    # One of the clinic's templates approved by WhatsApp: what may be sent once the 24-hour window closed.
    TEMPLATE = "template", "Modelo"
    # A line about the conversation itself (the patient changed number), not something anyone wrote.
    SYSTEM = "system", "Aviso do sistema"
    UNSUPPORTED = "unsupported", "Não suportada"


class MessageStatus(models.TextChoices):
    PENDING = "pending", "Pendente"
    SENT = "sent", "Enviada"
    DELIVERED = "delivered", "Entregue"
    READ = "read", "Lida"
    FAILED = "failed", "Falhou"
    # WhatsApp was called but its answer never came (a timeout, a 5xx from Meta's edge): the patient may
    # have it. Never sent again on its own; a later status from Meta settles it, or staff resend it.
    UNKNOWN = "unknown", "Entrega incerta"


# A reaction, or the deletion of a message the clinic never had, kept as messages of their own (these
# metadata keys): they ask the clinic for nothing (no wait, no away message, no push).
ASKS_NOTHING = frozenset({"reaction", "revoke"})


class Message(models.Model):
    """One message of a conversation; `clinic` repeats the conversation's so every query can scope on it."""

    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="+")
    # Indexed by the timeline and unread indexes below, which lead with it: no index of its own to keep up.
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages", db_index=False)
    direction = models.CharField(max_length=10, choices=Direction.choices)
    sender_type = models.CharField(max_length=12, choices=SenderType.choices)
    sender = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    message_type = models.CharField(max_length=12, choices=MessageType.choices, default=MessageType.TEXT)
    content = models.TextField(blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=MessageStatus.choices, default=MessageStatus.PENDING)
    error = models.TextField(blank=True)
    # The provider's id as a string: WhatsApp ids such as 5511965860124551150391104 overflow any integer.
    external_id = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001 (NULL: not known yet)
    # Chosen by the sender so a retried send is recognised and never stored twice.
    client_id = models.UUIDField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, help_text="When it happened (UTC), not when it was stored.")
    status_changed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "mensagem"
        constraints = [
            models.UniqueConstraint(
                fields=["clinic", "external_id"],
                condition=models.Q(external_id__isnull=False),
                name="message_unique_clinic_external_id",
            ),
            models.UniqueConstraint(
                fields=["conversation", "client_id"],
                condition=models.Q(client_id__isnull=False),
                name="message_unique_conversation_client_id",
            ),
            models.CheckConstraint(condition=models.Q(direction__in=Direction.values), name="message_direction_valid"),
            models.CheckConstraint(
                condition=models.Q(sender_type__in=SenderType.values), name="message_sender_type_valid"
            ),
            models.CheckConstraint(condition=models.Q(message_type__in=MessageType.values), name="message_type_valid"),
            models.CheckConstraint(condition=models.Q(status__in=MessageStatus.values), name="message_status_valid"),
        ]
        indexes = [
            models.Index(fields=["conversation", "-created_at", "-id"], name="message_timeline"),
            # Search reads a clinic's newest messages first (conversations/search.py).
            models.Index(fields=["clinic", "-created_at", "-id"], name="message_clinic_recent"),
            # Unread counts: the patient's messages of a conversation after a read marker, from the index alone.
            models.Index(
                fields=["conversation", "id"],
                condition=models.Q(direction="inbound", sender_type="patient"),
                name="message_from_patient",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_direction_display()} #{self.pk}: {self.content[:40]}"


class MessageAttachment(models.Model):
    """A file sent with a message (a photo, a voice note, a PDF)."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="attachments")
    file = models.FileField(upload_to="attachments/%Y/%m/")
    file_name = models.CharField(max_length=255)
    content_type = models.CharField(max_length=127)
    size = models.PositiveBigIntegerField()

    class Meta:
        verbose_name = "anexo"

    def __str__(self) -> str:
        return self.file_name
