"""Request throttles that fail open: a Redis outage must not take the API down with it."""

import logging

from rest_framework.throttling import AnonRateThrottle, UserRateThrottle

logger = logging.getLogger(__name__)


class FailOpenMixin:
    def allow_request(self, request, view) -> bool:
        try:
            return super().allow_request(request, view)
        except Exception:
            logger.warning("throttle %s could not reach its cache; allowing the request", self.scope, exc_info=True)
            return True


class UserThrottle(FailOpenMixin, UserRateThrottle):
    """Requests per signed-in user (`API_THROTTLE_USER`), per IP for anonymous callers."""


class LoginThrottle(FailOpenMixin, AnonRateThrottle):
    """Token requests per client IP (`API_THROTTLE_AUTH`): slows password guessing."""

    scope = "auth"
