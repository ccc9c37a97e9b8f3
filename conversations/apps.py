"""App configuration of the conversation domain."""

from django.apps import AppConfig


class ConversationsConfig(AppConfig):
    name = "conversations"
    verbose_name = "Conversas"

    def ready(self) -> None:
        import realtime.auth
        from conversations import checks, signals  # noqa: F401 (checks registers the deploy checks)
        from conversations.access import StreamAccess
        from conversations.api import schema  # noqa: F401 (registers the schema's auth extensions)

        signals.connect()
        # SQLite's tenancy triggers stand between migrations only (a table rebuild cannot run with them).
        from django.db.models.signals import post_migrate, pre_migrate

        from conversations import tenancy_rules

        pre_migrate.connect(tenancy_rules.drop_on_sqlite, sender=self, dispatch_uid="tenancy-rules-sqlite-drop")
        post_migrate.connect(tenancy_rules.ensure_on_sqlite, sender=self, dispatch_uid="tenancy-rules-sqlite")
        # The event stream learns from the domain how callers are recognised (DESIGN §1: handed down).
        realtime.auth.configure(StreamAccess())
