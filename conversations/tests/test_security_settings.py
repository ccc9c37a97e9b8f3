"""Secrets encrypted at rest, with keys that rotate; and the production settings pass `check --deploy`."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import connection

from conversations.models import WhatsAppChannel

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "EAAGm0PX4ZCpsBAKZBqZAqzVZCs1Q2-segredo"
APP_SECRET = "f3c1a9e0b7d24c58a1e6c9d0b2a4e8f1"


def stored(channel: WhatsAppChannel) -> tuple[str, str]:
    """The columns as the database holds them."""
    with connection.cursor() as cursor:
        table = connection.ops.quote_name(WhatsAppChannel._meta.db_table)
        cursor.execute(f"SELECT access_token, app_secret FROM {table} WHERE id = %s", [channel.pk])
        return cursor.fetchone()


@pytest.fixture
def channel(clinic):
    return WhatsAppChannel.objects.create(
        clinic=clinic, phone_number_id="555000111", access_token=TOKEN, app_secret=APP_SECRET, verify_token="v"
    )


def test_whatsapp_secrets_are_stored_encrypted_and_read_back_plain(channel):
    token, secret = stored(channel)
    assert token.startswith("fernet:") and secret.startswith("fernet:")
    assert TOKEN not in token and APP_SECRET not in secret
    again = WhatsAppChannel.objects.get(pk=channel.pk)
    assert (again.access_token, again.app_secret) == (TOKEN, APP_SECRET)
    assert WhatsAppChannel.objects.values_list("app_secret", flat=True).get() == APP_SECRET


def test_a_key_is_rotated_by_putting_a_new_one_first_and_re_encrypting(channel, settings, capsys):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [old]
    call_command("rotate_field_encryption")  # from the derived key to a key of its own
    under_old = stored(channel)
    settings.FIELD_ENCRYPTION_KEYS = [new, old]
    assert WhatsAppChannel.objects.get(pk=channel.pk).access_token == TOKEN, "the old key still reads"
    call_command("rotate_field_encryption")
    assert "1 row(s)" in capsys.readouterr().out and stored(channel) != under_old
    settings.FIELD_ENCRYPTION_KEYS = [new]  # the old key removed
    assert WhatsAppChannel.objects.get(pk=channel.pk).app_secret == APP_SECRET


def test_a_missing_key_is_a_clear_error_not_garbage(channel, settings):
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    call_command("rotate_field_encryption")
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]  # not the one it was written with
    with pytest.raises(ImproperlyConfigured, match="cannot be decrypted"):
        WhatsAppChannel.objects.get(pk=channel.pk)


def production_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "REDIS_URL", "DEBUG"))}
    return env | {
        "SECRET_KEY": "k" * 20 + "-a-long-random-production-secret-key-0123456789",
        "DEBUG": "0",
        "ALLOWED_HOSTS": "clinica.example.com",
        **extra,
    }


def test_the_documented_production_settings_pass_check_deploy():
    settings_of_deploy = {}
    for line in (ROOT / "deploy/taskmed.env.example").read_text().splitlines():
        if line and not line.startswith("#") and "=" in line:
            name, value = line.split("=", 1)
            settings_of_deploy[name] = value
    env = production_env(**{k: v for k, v in settings_of_deploy.items() if k not in ("DATABASE_URL", "REDIS_URL")})
    env["FIELD_ENCRYPTION_KEYS"] = Fernet.generate_key().decode()
    env["SECRET_KEY"] = production_env()["SECRET_KEY"]
    done = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no issues" in done.stdout


def test_check_deploy_warns_when_secrets_hang_on_the_secret_key():
    done = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        cwd=ROOT,
        env=production_env(SECURE_SSL_REDIRECT="1"),
        capture_output=True,
        text=True,
    )
    assert "taskmed.W001" in done.stdout + done.stderr
