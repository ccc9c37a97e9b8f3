"""The database refuses a conversation of another clinic than its patient's, and a patient moved to another
clinic (conversations.tenancy_rules). Not atomic: on PostgreSQL the foreign key is added NOT VALID and then
validated in a statement of its own, which reads the existing rows without blocking writes meanwhile."""

from django.db import migrations

from conversations import tenancy_rules


def enforce(apps, schema_editor):
    """PostgreSQL's constraint and trigger; SQLite's triggers are made after each migrate (post_migrate), since
    a later migration's table rebuild could not run with them in place."""
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(tenancy_rules.POSTGRESQL_FOREIGN_KEY, params=None)
        schema_editor.execute(tenancy_rules.POSTGRESQL_VALIDATE, params=None)
        schema_editor.execute(tenancy_rules.POSTGRESQL_TRIGGER, params=None)


def undo(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(tenancy_rules.POSTGRESQL_UNDO, params=None)
    elif schema_editor.connection.vendor == "sqlite":
        for statement in tenancy_rules.SQLITE_UNDO:
            schema_editor.execute(statement, params=None)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("conversations", "0023_contact_clinic_for_ever"),
    ]

    operations = [migrations.RunPython(enforce, undo, atomic=False)]
