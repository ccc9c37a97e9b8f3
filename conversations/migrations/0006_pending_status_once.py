"""A provider status is kept for later at most once (duplicates made before are dropped first), and old
ones can be found by age to be pruned."""

from django.db import migrations, models


def drop_duplicates(apps, schema_editor):
    PendingStatus = apps.get_model("conversations", "PendingStatus")
    seen = set()
    for pending in PendingStatus.objects.order_by("pk").iterator():
        key = (pending.clinic_id, pending.external_id, pending.status)
        if key in seen:
            pending.delete()
        seen.add(key)


class Migration(migrations.Migration):
    dependencies = [
        ("conversations", "0005_message_indexes"),
    ]

    operations = [
        migrations.RunPython(drop_duplicates, migrations.RunPython.noop),
        migrations.RemoveIndex(model_name="pendingstatus", name="pending_status_lookup"),
        migrations.AddIndex(
            model_name="pendingstatus",
            index=models.Index(fields=["clinic", "received_at"], name="pending_status_age"),
        ),
        migrations.AddConstraint(
            model_name="pendingstatus",
            constraint=models.UniqueConstraint(fields=("clinic", "external_id", "status"), name="pending_status_once"),
        ),
    ]
