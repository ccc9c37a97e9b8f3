"""Request throttles that fail open: a Redis outage must not take the API down with it."""

import logging

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle, UserRateThrottle

from conversations import rate_limits

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
        return rate_limits.count(f"{self.key}:{window}", self.duration + 1) <= self.num_requests

    def wait(self) -> float:
        return self.wait_seconds


class ServerAddressMixin:
    """The client's address as the server was given it (REMOTE_ADDR, which honours `X-Forwarded-For` only
    from proxies the server trusts): DRF's own reads the header whoever sent it, so a client rotating a
    made-up value would never be counted twice."""

    def get_ident(self, request) -> str:
        return request.META.get("REMOTE_ADDR") or "unknown"


class UserThrottle(FailOpenMixin, FixedWindowMixin, ServerAddressMixin, UserRateThrottle):
    """Requests per signed-in user (`API_THROTTLE_USER`), per address for anonymous callers."""


class LoginThrottle(FailOpenMixin, FixedWindowMixin, ServerAddressMixin, SimpleRateThrottle):
    """Token and refresh requests per client address (`API_THROTTLE_AUTH`), counted with the browser's and
    the admin's logins (rate_limits): slows password guessing."""

    scope = "auth"

    def get_rate(self) -> str:
        return settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["auth"]  # read now: the login forms' too

    def parse_rate(self, rate):
        return rate_limits.parse_rate(rate) if rate else (None, None)  # "10/15min" as the forms read it

    def get_cache_key(self, request, view) -> str:
        return rate_limits.address_key(self.get_ident(request))


class RefreshThrottle(FailOpenMixin, FixedWindowMixin, ServerAddressMixin, SimpleRateThrottle):
    """Token refreshes per client address (`API_THROTTLE_REFRESH`): counted apart from logins."""

    scope = "refresh"

    def get_cache_key(self, request, view) -> str:
        return f"refresh:address:{self.get_ident(request)}"
