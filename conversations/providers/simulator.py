"""The simulator: acknowledges at once, then reports delivered and read, so the product can be tried
without Meta. It is the provider of a number marked simulated (the demo's) and of nothing else: a clinic
without a number gets no ticks at all (providers.provider_for)."""

import uuid

from conversations.models import Message
from conversations.providers.base import Rejected


class SimulatorProvider:
    name = "simulator"

    def send(self, message: Message) -> str:
        contact = message.conversation.contact
        if not (contact.phone or contact.whatsapp_id or contact.whatsapp_user_id or contact.whatsapp_parent_user_id):
            # What WhatsApp would answer too: there is no one to deliver to.
            raise Rejected("The patient has neither a phone number nor a WhatsApp user id to send to.")
        # The later ticks are scheduled by the delivery task once "sent" is recorded.
        return f"sim.{uuid.uuid4().hex}"
