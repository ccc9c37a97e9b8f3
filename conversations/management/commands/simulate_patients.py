"""`manage.py simulate_patients`: patients writing to a running server, as signed WhatsApp webhooks."""

import json
import random
import time

import httpx
from django.core.management.base import BaseCommand, CommandError, CommandParser

from conversations import demo_content
from conversations.models import Clinic
from conversations.providers import channel_of
from conversations.webhooks.whatsapp import signature_of


def notification(
    phone_number_id: str, text: str, n: int, *, phone: str = "", name: str = "", user_id: str = "", username: str = ""
) -> dict:
    """One inbound text in the shape Meta sends it: with the phone, or for a patient who uses a username,
    with the business-scoped user id alone."""
    contact: dict = {"profile": {"name": name}}
    message: dict = {}
    if user_id:
        contact["user_id"] = message["from_user_id"] = user_id
    if phone:
        contact["wa_id"] = message["from"] = phone
    if username:
        contact["profile"]["username"] = username
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "simulated-waba",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {"display_phone_number": "5511300000000", "phone_number_id": phone_number_id},
                            "contacts": [contact],
                            "messages": [
                                {
                                    **message,
                                    "id": f"wamid.SIM{time.time_ns()}{n}",
                                    "timestamp": str(int(time.time())),
                                    "type": "text",
                                    "text": {"body": text},
                                }
                            ],
                        },
                    }
                ],
            }
        ],
    }


class Command(BaseCommand):
    help = "Post signed WhatsApp-format webhooks of patients' messages to a running server, at a steady rate."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", default="http://127.0.0.1:8000", help="the server (default: %(default)s)")
        parser.add_argument("--clinic", required=True, help="the clinic's slug; it needs a WhatsApp channel")
        parser.add_argument("--rate", type=float, default=1.0, help="messages per second (default 1)")
        parser.add_argument("--count", type=int, default=10, help="how many messages (default 10)")
        parser.add_argument("--patients", type=int, default=5, help="how many different patients (default 5)")

    def handle(self, *args, url: str, clinic: str, rate: float, count: int, patients: int, **options) -> None:
        found = Clinic.objects.filter(slug=clinic).first()
        channel = channel_of(found.pk) if found else None
        if channel is None:
            raise CommandError(f"No clinic {clinic!r} with a WhatsApp channel; `manage.py seed_demo` makes demo ones.")
        if rate <= 0 or count < 1 or patients < 1:
            raise CommandError("--rate, --count and --patients must be positive.")
        rng = random.Random()
        people = []
        for p in range(patients):
            first = rng.choice(demo_content.FIRST_NAMES)
            people.append(
                {
                    # Every fourth patient uses a WhatsApp username, so WhatsApp withholds the phone.
                    "phone": "" if p % 4 == 3 else f"55119{rng.randrange(10**8):08d}",
                    "user_id": f"BR.{rng.randrange(10**18):018d}",
                    "username": f"{first.lower()}.{rng.randrange(1000)}" if p % 4 == 3 else "",
                    "name": f"{first} {rng.choice(demo_content.LAST_NAMES)}",
                }
            )
        endpoint = url.rstrip("/") + "/webhooks/whatsapp/"
        started, failures = time.monotonic(), 0
        with httpx.Client(timeout=10) as client:
            for n in range(count):
                text = rng.choice(demo_content.PATIENT_LINES)
                body = json.dumps(notification(channel.phone_number_id, text, n, **people[n % patients])).encode()
                try:
                    response = client.post(
                        endpoint,
                        content=body,
                        headers={
                            "Content-Type": "application/json",
                            "X-Hub-Signature-256": signature_of(body, channel.app_secret),
                        },
                    )
                    ok = response.status_code == 200
                except httpx.HTTPError as error:
                    raise CommandError(
                        f"Could not reach {endpoint}: {error.__class__.__name__}. Is the server running?"
                    ) from None
                failures += not ok
                if not ok:
                    self.stderr.write(f"  message {n + 1}: HTTP {response.status_code} {response.text[:120]}")
                if (n + 1) % max(1, count // 10) == 0 or n + 1 == count:
                    self.stdout.write(f"  {n + 1}/{count} sent")
                time.sleep(max(0.0, started + (n + 1) / rate - time.monotonic()))
        elapsed = time.monotonic() - started
        self.stdout.write(
            self.style.SUCCESS(f"{count - failures}/{count} accepted in {elapsed:.1f}s ({count / elapsed:.1f}/s).")
        )
        if failures:
            raise CommandError(f"{failures} webhooks were not accepted.")
