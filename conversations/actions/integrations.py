"""Actions on integration credentials: n8n bearer tokens."""

from django.db import transaction
from django.utils import timezone

from conversations.models import Clinic, IntegrationToken


@transaction.atomic
def create_integration_token(*, clinic: Clinic, name: str) -> tuple[IntegrationToken, str]:
    """Create a token for the clinic's n8n webhook; returns the row and the token, shown this once only."""
    raw = IntegrationToken.generate()
    token = IntegrationToken.objects.create(
        clinic=clinic, name=name.strip() or "n8n", token_hash=IntegrationToken.hash_token(raw), prefix=raw[:10]
    )
    return token, raw


@transaction.atomic
def revoke_integration_token(*, token: IntegrationToken) -> IntegrationToken:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
    return token


@transaction.atomic
def touch_integration_token(*, token: IntegrationToken) -> None:
    """Record when the token was last used (support sees dead integrations by it)."""
    token.last_used_at = timezone.now()
    token.save(update_fields=["last_used_at"])
