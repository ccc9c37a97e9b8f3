"""WhatsApp access tokens and app secrets are stored encrypted (conversations.encryption); those stored
before are encrypted here."""

from django.db import migrations

import conversations.encryption


def encrypt_existing(apps, schema_editor):
    WhatsAppChannel = apps.get_model("conversations", "WhatsAppChannel")
    for pk, token, secret in WhatsAppChannel.objects.values_list("pk", "access_token", "app_secret"):
        WhatsAppChannel.objects.filter(pk=pk).update(access_token=token, app_secret=secret)  # encrypted on write


def decrypt_existing(apps, schema_editor):
    """Going back: the columns hold the plain values again."""
    WhatsAppChannel = apps.get_model("conversations", "WhatsAppChannel")
    table = schema_editor.quote_name(WhatsAppChannel._meta.db_table)
    for pk, token, secret in WhatsAppChannel.objects.values_list("pk", "access_token", "app_secret"):
        schema_editor.execute(f"UPDATE {table} SET access_token = %s, app_secret = %s WHERE id = %s", [token, secret, pk])


class Migration(migrations.Migration):
    dependencies = [
        ("conversations", "0008_contact_erased"),
    ]

    operations = [
        migrations.AlterField(
            model_name="whatsappchannel",
            name="access_token",
            field=conversations.encryption.EncryptedTextField(),
        ),
        migrations.AlterField(
            model_name="whatsappchannel",
            name="app_secret",
            field=conversations.encryption.EncryptedTextField(),
        ),
        migrations.RunPython(encrypt_existing, decrypt_existing),
    ]
