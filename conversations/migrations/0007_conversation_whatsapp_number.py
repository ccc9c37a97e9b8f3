"""Each conversation remembers the clinic's WhatsApp number the patient wrote to: replies go from it."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("conversations", "0006_pending_status_once"),
    ]

    operations = [
        migrations.AddField(
            model_name="conversation",
            name="whatsapp_number_id",
            field=models.CharField(blank=True, db_default="", default="", max_length=64),
        ),
    ]
