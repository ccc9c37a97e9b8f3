"""`manage.py make_vapid_keys`: a new VAPID key pair for Web Push, as the two lines the environment file
takes (docs/configuration.md). Changing it makes every device subscribe again."""

from django.core.management.base import BaseCommand

from conversations.push_keys import new_key_pair


class Command(BaseCommand):
    help = "Print a new VAPID key pair for push notifications, as WEB_PUSH_PUBLIC_KEY and WEB_PUSH_PRIVATE_KEY."

    def handle(self, *args, **options) -> None:
        public, private = new_key_pair()
        self.stdout.write(f"WEB_PUSH_PUBLIC_KEY={public}")
        self.stdout.write(f"WEB_PUSH_PRIVATE_KEY={private}")
