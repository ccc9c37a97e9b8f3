"""`manage.py check_whatsapp <clinic slug>`: do the clinic's WhatsApp credentials work?"""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from conversations.models import Clinic
from conversations.providers import channel_of
from conversations.providers.base import NotSent, ProviderError
from conversations.providers.whatsapp_cloud import GraphClient


class Command(BaseCommand):
    help = (
        "Ask the Graph API for the clinic's WhatsApp number with its stored token, and say what is wrong if it fails."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("clinic", help="the clinic's slug")

    def handle(self, *args, clinic: str, **options) -> None:
        found = Clinic.objects.filter(slug=clinic).first()
        if found is None:
            raise CommandError(f"No clinic with slug {clinic!r}.")
        channel = channel_of(found.pk)
        if channel is None:
            raise CommandError(f"{found.name} has no WhatsApp channel: add one in the admin (WhatsApp channels).")
        if channel.simulated:
            self.stdout.write(f"{found.name} uses a simulated channel: nothing to check against Meta.")
            return
        client = GraphClient(channel)
        try:
            number = client.phone_number()
        except NotSent as error:
            raise CommandError(
                f"Could not reach the Graph API at {settings.WHATSAPP_GRAPH_URL}: {error.reason}"
            ) from None
        except ProviderError as error:
            raise CommandError(
                f"The Graph API refused the credentials of number id {channel.phone_number_id}: {error.reason}. "
                "Check the access token and the phone number id in the admin."
            ) from None
        finally:
            client.close()
        self.stdout.write(
            self.style.SUCCESS(
                f"OK: {number.get('display_phone_number', '?')} ({number.get('verified_name', 'no verified name')}), "
                f"quality {number.get('quality_rating', 'unknown')}."
            )
        )
