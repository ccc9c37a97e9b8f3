"""A patient belongs to their clinic for ever, in the database itself (DESIGN §12): a conversation's clinic
must be its patient's, and a patient's clinic cannot change. On PostgreSQL a foreign key on
(contact, clinic) and a trigger. On SQLite triggers, which exist between migrations only: SQLite rebuilds a
table to alter it, and a trigger naming the table would stop the rebuild, so they are dropped before every
migrate (pre_migrate) and made again after it (post_migrate)."""

POSTGRESQL_FOREIGN_KEY = """
ALTER TABLE conversations_conversation ADD CONSTRAINT conversation_contact_same_clinic
    FOREIGN KEY (contact_id, clinic_id) REFERENCES conversations_contact (id, clinic_id)
    DEFERRABLE INITIALLY DEFERRED NOT VALID
"""
# Checked apart from the constraint's creation: the existing rows are read without blocking writes.
POSTGRESQL_VALIDATE = "ALTER TABLE conversations_conversation VALIDATE CONSTRAINT conversation_contact_same_clinic"
POSTGRESQL_TRIGGER = """
CREATE OR REPLACE FUNCTION conversations_contact_clinic_fixed() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'patient % belongs to clinic % for ever; it cannot be moved', OLD.id, OLD.clinic_id
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS conversations_contact_clinic_fixed ON conversations_contact;
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
    """CREATE TRIGGER IF NOT EXISTS conversation_contact_same_clinic_insert BEFORE INSERT ON conversations_conversation
    WHEN (SELECT clinic_id FROM conversations_contact WHERE id = NEW.contact_id) IS NOT NEW.clinic_id
    BEGIN SELECT RAISE(ABORT, 'a conversation belongs to its patient''s clinic'); END""",
    """CREATE TRIGGER IF NOT EXISTS conversation_contact_same_clinic_update
    BEFORE UPDATE OF contact_id, clinic_id ON conversations_conversation
    WHEN (SELECT clinic_id FROM conversations_contact WHERE id = NEW.contact_id) IS NOT NEW.clinic_id
    BEGIN SELECT RAISE(ABORT, 'a conversation belongs to its patient''s clinic'); END""",
    """CREATE TRIGGER IF NOT EXISTS contact_clinic_fixed BEFORE UPDATE OF clinic_id ON conversations_contact
    WHEN NEW.clinic_id IS NOT OLD.clinic_id
    BEGIN SELECT RAISE(ABORT, 'a patient belongs to their clinic for ever'); END""",
]
SQLITE_UNDO = [
    "DROP TRIGGER IF EXISTS conversation_contact_same_clinic_insert",
    "DROP TRIGGER IF EXISTS conversation_contact_same_clinic_update",
    "DROP TRIGGER IF EXISTS contact_clinic_fixed",
]


def _sqlite(using: str):
    from django.db import connections

    connection = connections[using]
    if connection.vendor != "sqlite":
        return None
    tables = set(connection.introspection.table_names())
    return connection if {"conversations_contact", "conversations_conversation"} <= tables else None


def drop_on_sqlite(sender=None, using: str = "default", **kwargs) -> None:
    """Before every migrate (pre_migrate): SQLite's triggers go, so that no table rebuild trips on them."""
    if (connection := _sqlite(using)) is not None:
        with connection.cursor() as cursor:
            for statement in SQLITE_UNDO:
                cursor.execute(statement)


def ensure_on_sqlite(sender=None, using: str = "default", **kwargs) -> None:
    """After every migrate (post_migrate): SQLite's triggers, made (again)."""
    if (connection := _sqlite(using)) is not None:
        with connection.cursor() as cursor:
            for statement in SQLITE:
                cursor.execute(statement)
