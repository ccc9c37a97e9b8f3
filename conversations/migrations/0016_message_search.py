"""Full-text search over message text on PostgreSQL: Portuguese stemming with accents folded
("consulta" finds "Consultas", "exame" finds "exâmes"), a stored tsvector kept by the database itself (so
every write path, the webhook's one statement included, fills it), and a GIN index on it. SQLite has
none of this: search falls back to plain matching there (conversations/search.py)."""

from django.db import migrations

FORWARD = [
    "CREATE EXTENSION IF NOT EXISTS unaccent",
    """
    DO $$ BEGIN
      IF NOT EXISTS (SELECT 1 FROM pg_ts_config WHERE cfgname = 'pt_unaccent') THEN
        CREATE TEXT SEARCH CONFIGURATION public.pt_unaccent (COPY = pg_catalog.portuguese);
        ALTER TEXT SEARCH CONFIGURATION public.pt_unaccent
          ALTER MAPPING FOR hword, hword_part, word WITH public.unaccent, pg_catalog.portuguese_stem;
      END IF;
    END $$
    """,
    "ALTER TABLE conversations_message ADD COLUMN search_vector tsvector "
    "GENERATED ALWAYS AS (to_tsvector('public.pt_unaccent'::regconfig, content)) STORED",
    "CREATE INDEX message_search ON conversations_message USING gin (search_vector)",
]
BACKWARD = [
    "DROP INDEX IF EXISTS message_search",
    "ALTER TABLE conversations_message DROP COLUMN IF EXISTS search_vector",
]


def run(statements):
    def apply(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        for statement in statements:
            schema_editor.execute(statement)

    return apply


class Migration(migrations.Migration):
    dependencies = [("conversations", "0015_labels_snooze")]

    operations = [migrations.RunPython(run(FORWARD), run(BACKWARD))]
