"""`manage.py rotate_field_encryption`: re-encrypt every stored secret with the first FIELD_ENCRYPTION_KEYS key."""

from django.core.management.base import BaseCommand
from django.db import transaction

from conversations import encryption
from conversations.models import WhatsAppChannel

ENCRYPTED = {WhatsAppChannel: ("access_token", "app_secret")}


class Command(BaseCommand):
    help = (
        "Re-encrypt the stored secrets (WhatsApp access tokens and app secrets) with the first key of "
        "FIELD_ENCRYPTION_KEYS; secrets stored before encryption are encrypted. Run it after putting a new "
        "key first, and before removing the old one."
    )

    def handle(self, *args, **options) -> None:
        done = 0
        with transaction.atomic():
            for model, fields in ENCRYPTED.items():
                table = model.objects.select_for_update()
                for row in list(table.values("pk", *fields)):  # decrypted on read, with any key
                    stored = {name: encryption.encrypt(row[name]) for name in fields if row[name]}
                    model.objects.filter(pk=row["pk"]).update(**stored)
                    done += 1
        self.stdout.write(self.style.SUCCESS(f"Re-encrypted the secrets of {done} row(s) with the first key."))
