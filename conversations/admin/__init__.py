"""The support team's admin: every model findable, history read-only, secrets never shown in full, and
every change made through a named action, in the audit trail."""

from conversations.admin import accounts, clinics, history  # noqa: F401 (each registers its pages)
from conversations.admin.accounts import support_password_change
from conversations.admin.base import SupportActions

__all__ = ["SupportActions", "support_password_change"]
