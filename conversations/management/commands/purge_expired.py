"""`manage.py purge_expired`: apply each clinic's retention (`retention_days`) under LGPD."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from conversations.actions.privacy import purge_expired
from conversations.models import Clinic
from realtime import partitions


class Command(BaseCommand):
    help = (
        "Delete messages (with their files), emptied conversations, patients left with none, event-log "
        "entries and pending provider statuses older than each clinic's retention_days. In batches, each "
        "committed on its own: safe to interrupt and run again. Says what it would delete unless --yes. "
        "Without --clinic it also keeps the event log's monthly partitions (PostgreSQL): the coming months "
        "made, those older than EVENT_LOG_KEEP_DAYS dropped."
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
        if not clinic:
            self.upkeep_event_log(dry_run=not yes)
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

    def upkeep_event_log(self, *, dry_run: bool) -> None:
        """The event log's monthly partitions (PostgreSQL): the coming months made, the expired dropped."""
        if not partitions.is_partitioned():
            return
        keep = settings.EVENT_LOG_KEEP_DAYS
        done = partitions.maintain(keep, dry_run=dry_run)
        verb = ("would make", "would drop") if dry_run else ("made", "dropped")
        self.stdout.write(f"Event log (partitions by month, kept {keep} days):")
        self.stdout.write(f"  {verb[0]}: {', '.join(done.created) or 'nothing'}")
        if done.moved_from_default:
            self.stdout.write(f"  moved {done.moved_from_default} events out of the default partition")
        dropped = ", ".join(f"{name} (≈ {rows} events)" for name, rows in done.dropped.items())
        self.stdout.write(f"  {verb[1]}: {dropped or 'nothing'}")
