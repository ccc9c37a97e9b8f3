"""Callers of the WhatsApp webhook whose requests were refused (no signature, or a wrong one), counted per
client address in this process: past WHATSAPP_REFUSALS_PER_MINUTE an address is answered 429 before its
request is even checked, so a stranger's flood costs a dictionary lookup a request, never an HMAC or a
database thread. Meta's signed notifications are never counted."""

import threading
import time
from collections import OrderedDict, deque

from django.conf import settings

ADDRESSES = 10_000  # addresses remembered at once; the least recently refused are forgotten first


class Refusals:
    """A sliding minute of refused requests per address."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self.seen: OrderedDict[str, deque[float]] = OrderedDict()
        self.lock = threading.Lock()  # the Django view counts from its threads too

    def wait(self, address: str) -> float | None:
        """Seconds until `address` may be heard again, or None when it may now."""
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
