"""The event log partitioned by month on PostgreSQL (realtime.partitions): the rows are copied into the
new table under its lock, so writes wait for it (docs/realtime.md gives the time per million events).
Elsewhere nothing changes."""

from django.db import migrations
from django.utils import timezone


def partition(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        from realtime import partitions

        with schema_editor.connection.cursor() as cursor:
            partitions.partition_existing(cursor, timezone.now())


def unpartition(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        from realtime import partitions

        with schema_editor.connection.cursor() as cursor:
            partitions.unpartition(cursor)


class Migration(migrations.Migration):
    dependencies = [("realtime", "0002_event_clinic_index")]

    operations = [migrations.RunPython(partition, unpartition)]
