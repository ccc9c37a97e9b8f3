"""A patient belongs to their clinic for ever, in the database too: a conversation's clinic must be its
patient's (on PostgreSQL a foreign key on (contact, clinic); on SQLite triggers), and a patient's clinic
cannot change. The status `blocked`, which nothing honoured, goes (such patients become active)."""

from django.db import migrations, models

POSTGRESQL = """
ALTER TABLE conversations_conversation ADD CONSTRAINT conversation_contact_same_clinic
    FOREIGN KEY (contact_id, clinic_id) REFERENCES conversations_contact (id, clinic_id)
    DEFERRABLE INITIALLY DEFERRED;
CREATE OR REPLACE FUNCTION conversations_contact_clinic_fixed() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'patient % belongs to clinic % for ever; it cannot be moved', OLD.id, OLD.clinic_id
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER conversations_contact_clinic_fixed BEFORE UPDATE OF clinic_id ON conversations_contact
    FOR EACH ROW WHEN (NEW.clinic_id IS DISTINCT FROM OLD.clinic_id)
    EXECUTE FUNCTION conversations_contact_clinic_fixed();
"""
POSTGRESQL_UNDO = """
DROP TRIGGER IF EXISTS conversations_contact_clinic_fixed ON conversations_contact;
DROP FUNCTION IF EXISTS conversations_contact_clinic_fixed();
ALTER TABLE conversations_conversation DROP CONSTRAINT IF EXISTS conversation_contact_same_clinic;
"""
SQLITE = [
    """CREATE TRIGGER conversation_contact_same_clinic_insert BEFORE INSERT ON conversations_conversation
    WHEN (SELECT clinic_id FROM conversations_contact WHERE id = NEW.contact_id) IS NOT NEW.clinic_id
    BEGIN SELECT RAISE(ABORT, 'a conversation belongs to its patient''s clinic'); END""",
    """CREATE TRIGGER conversation_contact_same_clinic_update BEFORE UPDATE OF contact_id, clinic_id
    ON conversations_conversation
    WHEN (SELECT clinic_id FROM conversations_contact WHERE id = NEW.contact_id) IS NOT NEW.clinic_id
    BEGIN SELECT RAISE(ABORT, 'a conversation belongs to its patient''s clinic'); END""",
    """CREATE TRIGGER contact_clinic_fixed BEFORE UPDATE OF clinic_id ON conversations_contact
    WHEN NEW.clinic_id IS NOT OLD.clinic_id
    BEGIN SELECT RAISE(ABORT, 'a patient belongs to their clinic for ever'); END""",
]
SQLITE_UNDO = [
    "DROP TRIGGER IF EXISTS conversation_contact_same_clinic_insert",
    "DROP TRIGGER IF EXISTS conversation_contact_same_clinic_update",
    "DROP TRIGGER IF EXISTS contact_clinic_fixed",
]


def refuse_mixed_clinics(apps, schema_editor):
    """Conversations already written into another clinic's patient must be sorted out by a person first."""
    Conversation = apps.get_model("conversations", "Conversation")
    mixed = list(
        Conversation.objects.exclude(clinic_id=models.F("contact__clinic_id")).values_list("pk", flat=True)[:20]
    )
    if mixed:
        raise RuntimeError(
            f"Conversations {mixed} belong to another clinic than their patient's (a patient moved between "
            "clinics in the admin before this release). Decide which clinic each belongs to, give it a patient "
            "of that clinic, then migrate again."
        )


def enforce(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(POSTGRESQL, params=None)
    elif schema_editor.connection.vendor == "sqlite":
        for statement in SQLITE:
            schema_editor.execute(statement, params=None)


def undo(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(POSTGRESQL_UNDO, params=None)
    elif schema_editor.connection.vendor == "sqlite":
        for statement in SQLITE_UNDO:
            schema_editor.execute(statement, params=None)


def unblock(apps, schema_editor):
    apps.get_model("conversations", "Contact").objects.filter(status="blocked").update(status="active")


class Migration(migrations.Migration):
    dependencies = [
        ("conversations", "0022_api_session_password"),
    ]

    operations = [
        migrations.RemoveConstraint(model_name="contact", name="contact_status_valid"),
        migrations.RunPython(unblock, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="contact",
            name="status",
            field=models.CharField(
                choices=[("active", "Ativo"), ("erased", "Anonimizado (LGPD)")], default="active", max_length=10
            ),
        ),
        migrations.AddConstraint(
            model_name="contact",
            constraint=models.CheckConstraint(
                condition=models.Q(("status__in", ["active", "erased"])), name="contact_status_valid"
            ),
        ),
        migrations.AddConstraint(
            model_name="contact",
            constraint=models.UniqueConstraint(fields=("id", "clinic"), name="contact_id_clinic"),
        ),
        migrations.RunPython(refuse_mixed_clinics, migrations.RunPython.noop),
        migrations.RunPython(enforce, undo),
    ]
