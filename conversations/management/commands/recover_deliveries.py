"""`manage.py recover_deliveries`: re-queue pending messages whose delivery task was lost with a worker."""

from django.core.management.base import BaseCommand, CommandParser

from conversations.tasks import deliver_message, stalled_deliveries


class Command(BaseCommand):
    help = (
        "Find outbound messages still pending after --older-than minutes with no delivery queued (a worker "
        "was killed while holding them) and queue their delivery again. One whose earlier attempt may have "
        "reached WhatsApp is failed as 'outcome unknown', never sent twice. Dry run unless --yes."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--older-than", type=int, default=10, help="minutes (default 10)")
        parser.add_argument("--yes", action="store_true", help="queue them; without it, only list them")

    def handle(self, *args, older_than: int, yes: bool, **options) -> None:
        stalled = stalled_deliveries(older_than)
        if not stalled:
            self.stdout.write("No stalled deliveries.")
            return
        self.stdout.write(f"{len(stalled)} stalled deliveries: messages {', '.join(map(str, stalled[:20]))}")
        if not yes:
            self.stdout.write("Dry run: run again with --yes to queue them.")
            return
        for message_id in stalled:
            deliver_message.enqueue(message_id)
        self.stdout.write(self.style.SUCCESS(f"Queued {len(stalled)} deliveries."))
