"""`manage.py rebuild_report_facts [--clinic <slug>] [--replace]`: the reports' facts of each clinic's
history, from the messages it keeps — after upgrading to a version with reports, so that what happened
before shows in them (and which conversations await an answer). Safe while the clinic works; a second run
adds nothing."""

from django.core.management.base import BaseCommand, CommandError, CommandParser

from conversations.actions.reporting import rebuild_report_facts
from conversations.models import Clinic


class Command(BaseCommand):
    help = (
        "Add the reports' facts of each clinic's history (messages per hour before its first counted hour; an "
        "attendance for each conversation without one) and which conversations await an answer, from the "
        "messages it keeps. Safe while the clinic works; a second run adds nothing. --replace drops the "
        "clinic's facts first: only for a clinic without traffic, since facts of messages purged or erased "
        "cannot be rebuilt."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--clinic", help="only this clinic (its slug); every clinic otherwise")
        parser.add_argument(
            "--replace", action="store_true", help="drop the clinic's facts and rebuild them all (no traffic only)"
        )

    def handle(self, *args, clinic: str | None, replace: bool, **options) -> None:
        clinics = Clinic.objects.order_by("pk")
        if clinic is not None:
            clinics = clinics.filter(slug=clinic)
            if not clinics.exists():
                raise CommandError(f"No clinic with slug {clinic!r}.")
        for each in clinics:
            written = rebuild_report_facts(
                clinic_id=each.pk, replace=replace, progress=lambda line, c=each: self.stdout.write(f"{c}: {line}")
            )
            self.stdout.write(
                f"{each.name}: {written['attendances']:,} attendances, {written['hours']:,} hours of messages, "
                f"{written['awaiting']:,} conversations awaiting an answer added."
            )
