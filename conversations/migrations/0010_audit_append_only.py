"""The audit trail is append-only, the database included: records outlive their clinic and actor (kept by
id, with the actor's name as it was), and on PostgreSQL a trigger refuses any UPDATE or DELETE."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

APPEND_ONLY = """
CREATE OR REPLACE FUNCTION conversations_audit_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the audit trail is append-only: % on conversations_auditevent refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER conversations_audit_append_only BEFORE UPDATE OR DELETE ON conversations_auditevent
    FOR EACH ROW EXECUTE FUNCTION conversations_audit_append_only();
"""
UNDO = """
DROP TRIGGER IF EXISTS conversations_audit_append_only ON conversations_auditevent;
DROP FUNCTION IF EXISTS conversations_audit_append_only();
"""


def names_of_actors(apps, schema_editor):
    AuditEvent = apps.get_model("conversations", "AuditEvent")
    User = apps.get_model(*settings.AUTH_USER_MODEL.split("."))
    names = dict(User.objects.values_list("pk", "username"))
    for actor_id in AuditEvent.objects.exclude(actor_id=None).values_list("actor_id", flat=True).distinct():
        AuditEvent.objects.filter(actor_id=actor_id).update(actor_name=names.get(actor_id, ""))


def append_only(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(APPEND_ONLY, params=None)


def undo_append_only(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(UNDO, params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("conversations", "0009_encrypted_secrets"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="auditevent",
            name="actor_name",
            field=models.CharField(blank=True, max_length=150),
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="actor",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                null=True,
                on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="clinic",
            field=models.ForeignKey(
                db_constraint=False,
                on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="audit_events",
                to="conversations.clinic",
            ),
        ),
        migrations.RunPython(names_of_actors, migrations.RunPython.noop),
        migrations.RunPython(append_only, undo_append_only),
    ]
