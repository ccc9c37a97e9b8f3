"""`manage.py seed_demo [--scale N]`: demo clinics, staff and history; safe to run again."""

import time

from django.core.management.base import BaseCommand, CommandParser

from conversations.actions.demo import CONTACTS_PER_SCALE, seed_demo
from conversations.demo_content import DEMO_PASSWORD


class Command(BaseCommand):
    help = (
        "Create two demo clinics with staff of every role, patients, conversations in every status and a "
        "message history of every type and status. Idempotent: a second run adds only what is missing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--scale",
            type=int,
            default=1,
            help=f"Multiply the patients ({CONTACTS_PER_SCALE} per clinic) and so the messages (~40 each); "
            "500 gives about 1,000,000 messages.",
        )

    def handle(self, *args, scale: int, **options) -> None:
        if scale < 1:
            self.stderr.write(self.style.ERROR("--scale must be 1 or more."))
            raise SystemExit(2)
        started = time.monotonic()
        report = seed_demo(scale=scale, progress=lambda line: self.stdout.write(f"  {line}"))
        elapsed = time.monotonic() - started
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo data ready in {elapsed:.1f}s: {report.contacts} new patients, {report.messages} new messages."
            )
        )
        self.stdout.write(f"Demo logins (password for all: {DEMO_PASSWORD}):")
        for username, roles in report.staff:
            self.stdout.write(f"  {username:<16} {roles}")
