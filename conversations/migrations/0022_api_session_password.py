"""API sessions keep the password they logged in with (as an HMAC, like Django's browser sessions): the
open ones are stamped with their user's current password, so they live on until it changes."""

from django.db import migrations, models
from django.utils.crypto import salted_hmac

# Django's own (AbstractBaseUser.get_session_auth_hash): historical models have no methods to call.
KEY_SALT = "django.contrib.auth.models.AbstractBaseUser.get_session_auth_hash"


def stamp_open_sessions(apps, schema_editor):
    ApiSession = apps.get_model("conversations", "ApiSession")
    for session in ApiSession.objects.filter(revoked_at__isnull=True).select_related("user").iterator():
        session.auth_hash = salted_hmac(KEY_SALT, session.user.password, algorithm="sha256").hexdigest()
        session.save(update_fields=["auth_hash"])


class Migration(migrations.Migration):
    dependencies = [
        ("conversations", "0021_erased_identifiers"),
    ]

    operations = [
        migrations.AddField(
            model_name="apisession",
            name="auth_hash",
            field=models.CharField(blank=True, default="", editable=False, max_length=128),
        ),
        migrations.RunPython(stamp_open_sessions, migrations.RunPython.noop),
    ]
