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
        # SQLite loses a table's triggers when a migration rebuilds it: the tenancy rules are made again.
        from django.db.models.signals import post_migrate

        from conversations import tenancy_rules

        post_migrate.connect(tenancy_rules.ensure_on_sqlite, sender=self, dispatch_uid="tenancy-rules-sqlite")
        # The event stream learns from the domain how callers are recognised (DESIGN §1: handed down).
        realtime.auth.configure(StreamAccess())
