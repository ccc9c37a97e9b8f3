"""`manage.py merge_duplicate_contacts [--clinic <slug>] [--yes]`: find the records of one patient that
Brazil's ninth digit split in two, per clinic, and merge them (a dry run unless --yes)."""

from django.core.management.base import BaseCommand, CommandError, CommandParser

from conversations.actions.patients import merge_patients
from conversations.models import Clinic, Contact
from conversations.selectors import duplicate_patients, message_count_of


class Command(BaseCommand):
    help = (
        "List the patients each clinic holds twice under one canonical number (a Brazilian mobile written with "
        "and without its ninth digit), and with --yes merge each pair into the record holding the canonical "
        "number: conversations, messages, notes, labels, actions, read marks and WhatsApp ids, audited. "
        "Cannot be undone."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--clinic", help="only this clinic (its slug); every clinic otherwise")
        parser.add_argument("--yes", action="store_true", help="merge; without it, only list the pairs")

    def handle(self, *args, clinic: str | None, yes: bool, **options) -> None:
        clinics = Clinic.objects.order_by("pk")
        if clinic is not None:
            clinics = clinics.filter(slug=clinic)
            if not clinics.exists():
                raise CommandError(f"No clinic with slug {clinic!r}.")
        pairs = 0
        for each in clinics:
            for kept_id, others in duplicate_patients(each):
                kept = Contact.objects.get(pk=kept_id)
                for other_id in others:
                    other = Contact.objects.get(pk=other_id)
                    self.stdout.write(f"{each.name}: {self._described(kept)} ← {self._described(other)}")
                    pairs += 1
                    if yes:
                        merged = merge_patients(kept=kept, merged=other, actor=None)
                        self.stdout.write(
                            f"  merged: {merged.conversations} conversation(s), {merged.messages} message(s)"
                        )
        if not pairs:
            self.stdout.write("No duplicates: every patient has one record.")
        elif yes:
            self.stdout.write(self.style.SUCCESS(f"Merged {pairs} pair(s)."))
        else:
            self.stdout.write(f"Dry run: {pairs} pair(s) would be merged; run again with --yes. This cannot be undone.")

    def _described(self, contact: Contact) -> str:
        messages = message_count_of(contact)
        number = contact.phone_display if contact.phone else f"WhatsApp {contact.whatsapp_id}"
        return f"#{contact.pk} {contact.display_name} ({number}, {messages} message(s))"
