"""Secrets kept encrypted at rest: a model field whose value is stored as a Fernet token (AES-128-CBC and
HMAC-SHA256, `cryptography`), with keys from the environment.

FIELD_ENCRYPTION_KEYS lists Fernet keys, newest first: the first encrypts, any of them decrypts, so a key
is rotated by putting a new one first, running `manage.py rotate_field_encryption`, and then removing the
old one (docs/security.md). Unset, a key is derived from SECRET_KEY (the embedded setup; `check --deploy`
warns about it in production).
"""

import base64
import hashlib
from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models

PREFIX = "fernet:"  # stored values that are tokens; anything else is a value written before encryption


def derived_key(secret_key: str) -> bytes:
    return base64.urlsafe_b64encode(hashlib.sha256(b"taskmed-field-encryption:" + secret_key.encode()).digest())


@cache
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    try:
        return MultiFernet([Fernet(key) for key in keys])
    except ValueError as error:
        raise ImproperlyConfigured(
            "FIELD_ENCRYPTION_KEYS holds a value that is not a Fernet key (32 url-safe base64-encoded bytes); "
            "make one with: python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
        ) from error


def fernet() -> MultiFernet:
    """Encrypts with the first key; decrypts with any, the SECRET_KEY-derived one last (so secrets stored
    before keys were set are still read, and re-encrypted by `rotate_field_encryption`)."""
    derived = [derived_key(key).decode() for key in (settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS)]
    return _fernet((*settings.FIELD_ENCRYPTION_KEYS, *derived))


def encrypt(value: str) -> str:
    return PREFIX + fernet().encrypt(value.encode()).decode()


def decrypt(stored: str) -> str:
    if not stored.startswith(PREFIX):
        return stored
    try:
        return fernet().decrypt(stored[len(PREFIX) :].encode()).decode()
    except InvalidToken:
        raise ImproperlyConfigured(
            "A stored secret cannot be decrypted with any key of FIELD_ENCRYPTION_KEYS: was a key removed "
            "before `manage.py rotate_field_encryption` ran, or SECRET_KEY changed while no keys were set?"
        ) from None


class EncryptedTextField(models.TextField):
    """Text stored encrypted; read back as the plain value. Not searchable or orderable, by design."""

    def from_db_value(self, value, expression, connection):
        return value if value is None else decrypt(value)

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        return value if value in (None, "") or str(value).startswith(PREFIX) else encrypt(str(value))
