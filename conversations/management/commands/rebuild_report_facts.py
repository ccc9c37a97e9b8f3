"""`manage.py rebuild_report_facts [--clinic <slug>] [--replace]`: the reports' facts rebuilt from the
messages each clinic keeps — once, after upgrading to a version with reports, so that history from before
shows in them (and which conversations await an answer)."""

from django.core.management.base import BaseCommand, CommandError, CommandParser

from conversations.actions.reporting import rebuild_report_facts
from conversations.errors import InvalidInput
from conversations.models import Clinic


class Command(BaseCommand):
    help = (
        "Rebuild the reports' facts (attendances, first responses, resolutions, messages per hour) and which "
        "conversations await an answer from the messages each clinic keeps. A clinic with facts already is "
        "skipped unless --replace, which drops its facts first: facts of messages purged or erased since cannot "
        "be rebuilt and are then lost."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--clinic", help="only this clinic (its slug); every clinic otherwise")
        parser.add_argument("--replace", action="store_true", help="drop the facts a clinic has and rebuild them")

    def handle(self, *args, clinic: str | None, replace: bool, **options) -> None:
        clinics = Clinic.objects.order_by("pk")
        if clinic is not None:
            clinics = clinics.filter(slug=clinic)
            if not clinics.exists():
                raise CommandError(f"No clinic with slug {clinic!r}.")
        for each in clinics:
            try:
                written = rebuild_report_facts(
                    clinic_id=each.pk,
                    replace=replace,
                    progress=lambda line, c=each: self.stdout.write(f"{c.name}: {line}"),
                )
            except InvalidInput:
                self.stdout.write(f"{each.name}: has report facts already; skipped (--replace rebuilds them).")
                continue
            self.stdout.write(
                f"{each.name}: {written['attendances']:,} attendances, {written['hours']:,} hours of messages, "
                f"{written['awaiting']:,} conversations awaiting an answer."
            )
