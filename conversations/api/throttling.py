"""Request throttles that fail open: a Redis outage must not take the API down with it."""

import logging

from django.core.cache import cache
from rest_framework.throttling import AnonRateThrottle, UserRateThrottle

logger = logging.getLogger(__name__)


class FailOpenMixin:
    def allow_request(self, request, view) -> bool:
        try:
            return super().allow_request(request, view)
        except Exception:
            logger.warning("throttle %s could not reach its cache; allowing the request", self.scope, exc_info=True)
            return True


class FixedWindowMixin:
    """Counted in fixed windows: one counter a caller a window, one round trip to Redis a request. DRF's
    sliding history reads and rewrites the list of every request of the last window on each request. A
    caller may pass up to twice the rate across a window's edge: a limit against runaway clients, not a
    quota."""

    def allow_request(self, request, view) -> bool:
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        now = self.timer()
        window = int(now // self.duration)
        self.wait_seconds = (window + 1) * self.duration - now
        return _count(f"{self.key}:{window}", self.duration + 1) <= self.num_requests

    def wait(self) -> float:
        return self.wait_seconds


class UserThrottle(FailOpenMixin, FixedWindowMixin, UserRateThrottle):
    """Requests per signed-in user (`API_THROTTLE_USER`), per IP for anonymous callers."""


def _count(key: str, seconds: int) -> int:
    """Add one to the counter `key` (kept `seconds`) and return it."""
    client = getattr(cache, "client", None)
    if hasattr(client, "get_client"):  # django-redis: INCR and EXPIRE in one round trip
        name = cache.make_and_validate_key(key)
        with client.get_client(write=True).pipeline(transaction=False) as pipe:
            return pipe.incr(name).expire(name, seconds).execute()[0]
    cache.add(key, 0, seconds)
    return cache.incr(key)


class LoginThrottle(FailOpenMixin, AnonRateThrottle):
    """Token requests per client IP (`API_THROTTLE_AUTH`): slows password guessing."""

    scope = "auth"
