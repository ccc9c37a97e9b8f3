"""The simulator: acknowledges at once, then reports delivered and read, so the product can be tried
without Meta. It is the provider wherever a clinic has no real WhatsApp channel."""

import uuid

from conversations.models import Message


class SimulatorProvider:
    name = "simulator"

    def send(self, message: Message) -> str:
        # The later ticks are scheduled by the delivery task once "sent" is recorded.
        return f"sim.{uuid.uuid4().hex}"
