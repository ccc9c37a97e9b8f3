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


class Provider(Protocol):
    name: str

    def send(self, message: Message) -> str:
        """Deliver the message; returns the provider's id for it. Raises a ProviderError subclass."""
        ...
