"""`manage.py purge_expired`: apply each clinic's retention (`retention_days`) under LGPD."""

from django.core.management.base import BaseCommand, CommandError, CommandParser

from conversations.actions.privacy import purge_expired
from conversations.models import Clinic


class Command(BaseCommand):
    help = (
        "Delete messages (with their files), emptied conversations, patients left with none, event-log "
        "entries and pending provider statuses older than each clinic's retention_days. In batches, each "
        "committed on its own: safe to interrupt and run again. Says what it would delete unless --yes."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--clinic", help="only this clinic (its slug); default: every clinic")
        parser.add_argument("--batch", type=int, default=1000, help="rows per transaction (default 1000)")
        parser.add_argument("--yes", action="store_true", help="delete; without it, only count")

    def handle(self, *args, clinic: str | None, batch: int, yes: bool, **options) -> None:
        if batch < 1:
            raise CommandError("--batch must be at least 1.")
        clinics = Clinic.objects.order_by("pk")
        if clinic:
            clinics = clinics.filter(slug=clinic)
            if not clinics.exists():
                raise CommandError(f"No clinic with slug {clinic!r}.")
        for found in clinics:
            self.stdout.write(f"{found.name} (keeps {found.retention_days} days):")

            def progress(what: str, count: int) -> None:
                self.stdout.write(f"  {what}: {count} deleted so far")
                self.stdout.flush()

            done = purge_expired(clinic=found, batch=batch, progress=progress, dry_run=not yes)
            summary = ", ".join(f"{count} {what.replace('_', ' ')}" for what, count in vars(done).items())
            if yes:
                self.stdout.write(self.style.SUCCESS(f"  deleted: {summary}"))
            else:
                self.stdout.write(f"  would delete: {summary}")
        if not yes:
            self.stdout.write("Dry run: run again with --yes to delete.")
