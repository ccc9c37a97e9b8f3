"""What a provider promises, and the three ways a delivery can go wrong."""

from typing import Protocol

from conversations.models import Message


class ProviderError(Exception):
    """A delivery did not succeed; `reason` is shown to staff on the failed message."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class NotSent(ProviderError):
    """The provider certainly did not take the message (no connection, 429, 5xx): safe to try again."""


class Rejected(ProviderError):
    """The provider refused the message for good (a closed 24-hour window, a bad number): do not retry."""


class OutcomeUnknown(ProviderError):
    """The request went out but no answer came back: the patient may have it, so it is never resent."""


# What a send carries in `biz_opaque_callback_data`, which WhatsApp repeats in every status of the message:
# a status can then settle a message whose send's answer never came (its WhatsApp id unknown).
CALLBACK_PREFIX = "taskmed:message:"


def callback_data(message_id: int) -> str:
    return f"{CALLBACK_PREFIX}{message_id}"


def message_id_of_callback(data: str) -> int | None:
    """The id of the message a status names in its callback data, or None (not one of ours)."""
    number = data.removeprefix(CALLBACK_PREFIX)
    if number == data or not number.isdigit() or len(number) > 18:
        return None
    return int(number)


class Provider(Protocol):
    name: str

    def send(self, message: Message) -> str:
        """Deliver the message; returns the provider's id for it. Raises a ProviderError subclass."""
        ...
