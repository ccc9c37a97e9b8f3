"""`manage.py erase_contact <clinic slug> <contact id>`: anonymise a patient under LGPD (dry run unless --yes)."""

from django.core.management.base import BaseCommand, CommandError, CommandParser

from conversations.actions.privacy import erase_contact
from conversations.models import Clinic, Contact, Conversation, Message


class Command(BaseCommand):
    help = (
        "Anonymise a patient: their name, phone, WhatsApp ids and e-mail, and every text and file of their "
        "conversations, are deleted (the event log's copies too); counts and clinical actions stay. Audited. "
        "Shows what it would erase unless --yes. Cannot be undone."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("clinic", help="the clinic's slug")
        parser.add_argument("contact", type=int, help="the patient's id (GET /api/contacts/?q=… finds it)")
        parser.add_argument("--yes", action="store_true", help="erase; without it, only say what would go")

    def handle(self, *args, clinic: str, contact: int, yes: bool, **options) -> None:
        found = Contact.objects.filter(clinic__slug=clinic, pk=contact).select_related("clinic").first()
        if found is None:
            if not Clinic.objects.filter(slug=clinic).exists():
                raise CommandError(f"No clinic with slug {clinic!r}.")
            raise CommandError(f"No patient {contact} in clinic {clinic!r}.")
        if found.status == Contact.Status.ERASED:
            self.stdout.write(f"Patient {contact} was already erased; nothing to do.")
            return
        conversations = Conversation.objects.filter(contact=found).count()
        messages = Message.objects.filter(conversation__contact=found).count()
        self.stdout.write(
            f"Patient {contact} of {found.clinic.name}: {found.display_name}, {found.phone_display}; "
            f"{conversations} conversation(s), {messages} message(s)."
        )
        if not yes:
            self.stdout.write("Dry run: run again with --yes to erase. This cannot be undone.")
            return
        erased = erase_contact(contact=found, actor=None)
        self.stdout.write(
            self.style.SUCCESS(
                f"Erased: {erased.messages} message text(s), {erased.files} file(s), {erased.events} logged "
                f"event(s) of {erased.conversations} conversation(s)."
            )
        )
