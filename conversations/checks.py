"""System checks of this project's own settings, run by `manage.py check --deploy`."""

from django.conf import settings
from django.core import checks


@checks.register(checks.Tags.security, deploy=True)
def field_encryption_keys(app_configs, **kwargs) -> list[checks.CheckMessage]:
    if settings.FIELD_ENCRYPTION_KEYS:
        return []
    return [
        checks.Warning(
            "FIELD_ENCRYPTION_KEYS is not set: the WhatsApp secrets are encrypted with a key derived from "
            "SECRET_KEY, so changing SECRET_KEY would make them unreadable.",
            hint="Set FIELD_ENCRYPTION_KEYS to a Fernet key of its own (docs/security.md), then run "
            "`manage.py rotate_field_encryption`.",
            id="taskmed.W001",
        )
    ]
