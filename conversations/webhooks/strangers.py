"""Callers of the WhatsApp webhook whose requests were refused (no signature, or a wrong one), counted per
client address and app (the app secret the body points to) in this process: past
WHATSAPP_REFUSALS_PER_MINUTE that address is answered 429 for that app before its request is even checked,
so a stranger's flood costs a dictionary lookup a request, never an HMAC or a database thread. Signed
notifications are never counted, and one app's failing signatures (a secret not updated here), sent from
Meta's own addresses, never hold up another app's."""

import hashlib
import threading
import time
from collections import OrderedDict, deque

from django.conf import settings

ADDRESSES = 10_000  # addresses remembered at once; the least recently refused are forgotten first


def key(address: str | None, secret: str | None) -> str:
    """What refusals are counted under: the address, and a short digest of the app secret (never the secret)."""
    app = hashlib.blake2b(secret.encode(), digest_size=6).hexdigest() if secret is not None else "-"
    return f"{address or '?'} {app}"


class Refusals:
    """A sliding minute of refused requests per address."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self.seen: OrderedDict[str, deque[float]] = OrderedDict()
        self.lock = threading.Lock()  # the Django view counts from its threads too

    def wait(self, address: str) -> float | None:
        """Seconds until `address` (a `key`) may be heard again, or None when it may now."""
        with self.lock:
            times = self.seen.get(address)
            if times is None:
                return None
            self._expire(times)
            if len(times) < settings.WHATSAPP_REFUSALS_PER_MINUTE:
                return None
            return max(1.0, 60 - (self.clock() - times[0]))

    def refused(self, address: str) -> None:
        with self.lock:
            times = self.seen.setdefault(address, deque())
            self.seen.move_to_end(address)
            self._expire(times)
            times.append(self.clock())
            while len(self.seen) > ADDRESSES:
                self.seen.popitem(last=False)

    def _expire(self, times: deque[float]) -> None:
        now = self.clock()
        while times and now - times[0] >= 60:
            times.popleft()

    def forget(self) -> None:
        with self.lock:
            self.seen.clear()


refusals = Refusals()
