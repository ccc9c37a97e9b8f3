"""What erasure keeps of a patient: nothing that says who they were, only one-way marks of their WhatsApp
ids, so that Meta redelivering an old notification of theirs does not bring them back."""

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.crypto import salted_hmac

from conversations.models.clinics import Clinic
from conversations.phones import phone_forms


class ErasedIdentifier(models.Model):
    """A keyed one-way hash (HMAC-SHA256 under SECRET_KEY) of an erased patient's message id, phone or
    WhatsApp user id: it recognises the identifier when it comes again and cannot be turned back into it
    (a plain hash of a phone number could be, by trying them all). Looked up under SECRET_KEY_FALLBACKS too:
    keep a rotated key there for as long as Meta may redeliver (its retries last up to seven days)."""

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
    def digest_of(kind: str, value: str, secret: str | None = None) -> str:
        """The mark of `value` under SECRET_KEY (or `secret`)."""
        return salted_hmac(
            "taskmed.erased-identifier", f"{kind}:{value}", secret=secret, algorithm="sha256"
        ).hexdigest()

    @staticmethod
    def patient_digests(identifiers) -> list[str]:
        """The marks of a patient's identifiers, a phone in each of its forms (a mark made before numbers
        were canonical may hold WhatsApp's form without the ninth digit)."""
        values = [
            form for value in identifiers if value for form in (phone_forms(value) if value.isdigit() else [value])
        ]
        kind = ErasedIdentifier.Kind.PATIENT
        return [digest for value in dict.fromkeys(values) for digest in ErasedIdentifier.digests_of(kind, value)]

    @staticmethod
    def digests_of(kind: str, value: str) -> list[str]:
        """Every mark `value` may have been kept under: SECRET_KEY's, and each key being rotated out
        (SECRET_KEY_FALLBACKS), so that a rotation does not forget who was erased."""
        secrets = [None, *settings.SECRET_KEY_FALLBACKS]
        return [ErasedIdentifier.digest_of(kind, value, secret) for secret in secrets]
