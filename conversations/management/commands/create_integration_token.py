"""`manage.py create_integration_token <clinic slug>`: a bearer token for the clinic's n8n webhook, shown once."""

from django.core.management.base import BaseCommand, CommandError, CommandParser

from conversations.actions.integrations import create_integration_token
from conversations.models import Clinic


class Command(BaseCommand):
    help = "Create an integration token for a clinic's n8n workflows. It is printed once; only its hash is kept."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("clinic", help="the clinic's slug, e.g. clinica-sao-lucas")
        parser.add_argument("--name", default="n8n", help="what it is for, shown in the admin (default: n8n)")

    def handle(self, *args, clinic: str, name: str, **options) -> None:
        found = Clinic.objects.filter(slug=clinic).first()
        if found is None:
            slugs = ", ".join(Clinic.objects.values_list("slug", flat=True)[:20]) or "none yet"
            raise CommandError(f"No clinic with slug {clinic!r}. Clinics: {slugs}.")
        token, raw = create_integration_token(clinic=found, name=name)
        self.stdout.write(
            f"Token {token.name!r} for {found.name} (prefix {token.prefix}). Copy it now; it is not shown again:"
        )
        self.stdout.write(raw)
        self.stdout.write(f"Use it as: Authorization: Bearer {raw[:10]}…  on  POST /webhooks/n8n/{found.slug}/")
