"""Actions on integration credentials: n8n bearer tokens, and the WhatsApp secrets' encryption at rest."""

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from conversations import encryption
from conversations.actions.audit import record_audit
from conversations.models import Clinic, IntegrationToken, WhatsAppChannel

ENCRYPTED = {WhatsAppChannel: ("access_token", "app_secret")}  # the secrets stored encrypted


@transaction.atomic
def create_integration_token(
    *, clinic: Clinic, name: str, actor: AbstractBaseUser | None = None, ip: str | None = None
) -> tuple[IntegrationToken, str]:
    """Create a token for the clinic's n8n webhook; returns the row and the token, shown this once only.
    Audited by its name and prefix (`actor` None: from the command line)."""
    raw = IntegrationToken.generate()
    token = IntegrationToken.objects.create(
        clinic=clinic, name=name.strip() or "n8n", token_hash=IntegrationToken.hash_token(raw), prefix=raw[:10]
    )
    detail = {"name": token.name, "prefix": token.prefix}
    record_audit(clinic_id=clinic.pk, actor=actor, action="integration_token.created", obj=token, detail=detail, ip=ip)
    return token, raw


@transaction.atomic
def revoke_integration_token(
    *, token: IntegrationToken, actor: AbstractBaseUser | None = None, ip: str | None = None
) -> IntegrationToken:
    """Revoke the token at once; revoking it again changes (and records) nothing."""
    token = IntegrationToken.objects.select_for_update().get(pk=token.pk)
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        detail = {"name": token.name, "prefix": token.prefix}
        record_audit(
            clinic_id=token.clinic_id, actor=actor, action="integration_token.revoked", obj=token, detail=detail, ip=ip
        )
    return token


@transaction.atomic
def touch_integration_token(*, token: IntegrationToken) -> None:
    """Record when the token was last used (support sees dead integrations by it)."""
    token.last_used_at = timezone.now()
    token.save(update_fields=["last_used_at"])


@transaction.atomic
def reencrypt_secrets() -> int:
    """Re-encrypt every stored secret with the first FIELD_ENCRYPTION_KEYS key (read with any of them;
    secrets stored before encryption get encrypted); returns the rows rewritten."""
    done = 0
    for model, fields in ENCRYPTED.items():
        for row in list(model.objects.select_for_update().values("pk", *fields)):  # decrypted on read
            stored = {name: encryption.encrypt(row[name]) for name in fields if row[name]}
            model.objects.filter(pk=row["pk"]).update(**stored)
            done += 1
    return done
