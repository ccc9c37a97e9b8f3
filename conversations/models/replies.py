"""The clinic's saved answers (quick replies), typed in the composer by their short code after a "/"."""

from django.conf import settings
from django.db import models
from django.utils import timezone

from conversations.models.clinics import Clinic


class QuickReply(models.Model):
    """A saved answer: `shortcut` is what staff type after "/"; `content` may hold {{nome}},
    {{primeiro_nome}} and {{clinica}}, filled from the conversation when it is used."""

    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="quick_replies")
    shortcut = models.SlugField(max_length=32, allow_unicode=True)
    content = models.TextField()
    # Reply buttons it asks with (up to 3, conversations.questions): the patient answers with a tap.
    buttons = models.JSONField(default=list, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "resposta rápida"
        verbose_name_plural = "respostas rápidas"
        constraints = [models.UniqueConstraint(fields=["clinic", "shortcut"], name="quick_reply_unique_shortcut")]

    def __str__(self) -> str:
        return f"/{self.shortcut}"
