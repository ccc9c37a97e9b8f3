"""API sessions: each token login is a family of tokens that logging out revokes at once."""

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from conversations.models.clinics import Clinic


class ApiSession(models.Model):
    """One login through the API; its `sid` rides in every token issued from it, refreshed or not."""

    sid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_sessions")
    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # The user's password, as Django's browser sessions keep it (an HMAC of its hash): a password changed
    # by any path (the admin, `changepassword`, a reset) no longer matches, and every token of the session
    # stops working at once (access.session_is_open).
    auth_hash = models.CharField(max_length=128, blank=True, default="", editable=False)

    class Meta:
        verbose_name = "sessão da API"
        verbose_name_plural = "sessões da API"

    def __str__(self) -> str:
        return f"{self.user} @ {self.clinic} ({'revogada' if self.revoked_at else 'ativa'})"
