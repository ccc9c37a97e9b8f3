"""App configuration of the conversation domain."""

from django.apps import AppConfig


class ConversationsConfig(AppConfig):
    name = "conversations"
    verbose_name = "Conversas"

    def ready(self) -> None:
        from conversations import signals
        from conversations.api import schema  # noqa: F401 (registers the schema's auth extensions)

        signals.connect()
