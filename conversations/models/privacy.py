"""What erasure keeps of a patient: nothing that says who they were, only one-way marks of their WhatsApp
ids, so that Meta redelivering an old notification of theirs does not bring them back."""

from django.db import models
from django.utils import timezone
from django.utils.crypto import salted_hmac

from conversations.models.clinics import Clinic


class ErasedIdentifier(models.Model):
    """A keyed one-way hash (HMAC-SHA256 under SECRET_KEY) of an erased patient's message id, phone or
    WhatsApp user id: it recognises the identifier when it comes again and cannot be turned back into it
    (a plain hash of a phone number could be, by trying them all)."""

    class Kind(models.TextChoices):
        MESSAGE = "message", "Id de mensagem do WhatsApp"
        PATIENT = "patient", "Identificador do paciente"

    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    digest = models.CharField(max_length=64)
    erased_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "identificador anonimizado"
        verbose_name_plural = "identificadores anonimizados"
        constraints = [models.UniqueConstraint(fields=["clinic", "digest"], name="erased_identifier_once")]

    def __str__(self) -> str:
        return f"{self.kind} {self.digest[:12]}…"

    @staticmethod
    def digest_of(kind: str, value: str) -> str:
        return salted_hmac("taskmed.erased-identifier", f"{kind}:{value}", algorithm="sha256").hexdigest()
