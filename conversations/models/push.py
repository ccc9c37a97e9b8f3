"""Staff's devices subscribed to Web Push (DESIGN §12: nothing leaves the building about a patient by push)."""

from django.conf import settings
from django.db import models
from django.utils import timezone

from conversations.models.clinics import Clinic


class PushSubscription(models.Model):
    """One browser of one staff member, told of one clinic's news with the tab closed: the push service's
    endpoint and the keys that encrypt for it (RFC 8291), what the member wants to hear of, and the login
    it was made in (logging out of it removes it)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="+")
    endpoint = models.URLField(max_length=1000, unique=True)  # one per browser: a new owner takes it over
    p256dh = models.CharField(max_length=200)
    auth = models.CharField(max_length=100)
    session_key = models.CharField(max_length=80, blank=True, default="")
    # The server's VAPID public key the browser subscribed with: after a new key pair it cannot be pushed to.
    vapid_key = models.CharField(max_length=100, blank=True, default="")
    assigned = models.BooleanField(default=True, help_text="New messages in conversations assigned to them")
    unassigned = models.BooleanField(default=True, help_text="New messages in conversations with no one responsible")
    mentions = models.BooleanField(default=True, help_text="Notes that mention them")
    late = models.BooleanField(default=False, help_text="Conversations past the clinic's first-response target")
    created_at = models.DateTimeField(default=timezone.now)
    last_sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "aparelho com notificações"
        verbose_name_plural = "aparelhos com notificações"
        indexes = [models.Index(fields=["clinic", "user"], name="push_clinic_user")]

    def __str__(self) -> str:
        return f"notificações de {self.user_id} em {self.clinic_id}"
