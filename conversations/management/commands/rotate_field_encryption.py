"""`manage.py rotate_field_encryption`: re-encrypt every stored secret with the first FIELD_ENCRYPTION_KEYS key."""

from django.core.management.base import BaseCommand

from conversations.actions.integrations import reencrypt_secrets


class Command(BaseCommand):
    help = (
        "Re-encrypt the stored secrets (WhatsApp access tokens and app secrets) with the first key of "
        "FIELD_ENCRYPTION_KEYS; secrets stored before encryption are encrypted. Run it after putting a new "
        "key first, and before removing the old one."
    )

    def handle(self, *args, **options) -> None:
        done = reencrypt_secrets()
        self.stdout.write(self.style.SUCCESS(f"Re-encrypted the secrets of {done} row(s) with the first key."))
