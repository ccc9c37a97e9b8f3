"""Credentials that connect a clinic to WhatsApp's Cloud API and to its n8n automations."""

import hashlib
import secrets

from django.db import models
from django.utils import timezone

from conversations.encryption import EncryptedTextField
from conversations.models.clinics import Clinic


class WhatsAppChannel(models.Model):
    """A clinic's WhatsApp Business number; `phone_number_id` routes Meta's webhook to the clinic."""

    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="whatsapp_channels")
    phone_number_id = models.CharField(max_length=64, unique=True)
    display_phone_number = models.CharField(max_length=32, blank=True)
    access_token = EncryptedTextField()  # stored encrypted (conversations.encryption)
    app_secret = EncryptedTextField()
    verify_token = models.CharField(max_length=255)
    # A demo channel: Meta-format webhooks are accepted, and outbound messages go to the simulator.
    # The WhatsApp Business Account the number belongs to: where its approved templates are listed.
    business_account_id = models.CharField(max_length=64, blank=True, default="", db_default="")
    simulated = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        verbose_name = "canal WhatsApp"
        verbose_name_plural = "canais WhatsApp"

    def __str__(self) -> str:
        return f"{self.display_phone_number or self.phone_number_id} ({self.clinic})"


class IntegrationToken(models.Model):
    """A bearer token for the n8n webhook; only its SHA-256 is stored, the token is shown once."""

    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="integration_tokens")
    name = models.CharField(max_length=100)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    # The first characters, so support can tell tokens apart without seeing one.
    prefix = models.CharField(max_length=12, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "token de integração"
        verbose_name_plural = "tokens de integração"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @staticmethod
    def hash_token(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    @staticmethod
    def generate() -> str:
        return "tmk_" + secrets.token_urlsafe(32)
