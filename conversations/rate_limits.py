"""Counters in fixed windows, kept in the cache (Redis in production), and the limits on logging in.

Logging in is limited at every door (the API's token, the browser's form, the admin's form) by attempts
per client address, and by failed attempts per user name: from one address (LOGIN_FAILURES_PER_USER),
and from anywhere (ten times as many), so that neither a botnet on one account nor one address across
many accounts gets unlimited guesses, and nobody locks a colleague out with a few wrong passwords. The
client address is the one the server was given (REMOTE_ADDR): a proxy's `X-Forwarded-For` counts only
when the server trusts that proxy (TRUSTED_PROXIES, taskmed.serve), never because a client sent it. All
of it fails open: a cache outage must not lock everybody out.
"""

import hashlib
import logging
import re
import time

from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger(__name__)

UNITS = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "h": 3600,
    "hour": 3600,
    "d": 86400,
    "day": 86400,
}
RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([a-z]+)\s*$")


def parse_rate(rate: str) -> tuple[int, int]:
    """ "20/min" → (20, 60); "10/15min" → (10, 900)."""
    match = RATE.match(rate.lower())
    if match is None or match.group(3) not in UNITS:
        raise ValueError(f"Not a rate: {rate!r} (e.g. 20/min, 10/15min, 100/hour).")
    return int(match.group(1)), int(match.group(2) or 1) * UNITS[match.group(3)]


def count(key: str, seconds: int) -> int:
    """Add one to the counter `key` (kept `seconds`) and return it."""
    client = getattr(cache, "client", None)
    if hasattr(client, "get_client"):  # django-redis: INCR and EXPIRE in one round trip
        name = cache.make_and_validate_key(key)
        with client.get_client(write=True).pipeline(transaction=False) as pipe:
            return pipe.incr(name).expire(name, seconds).execute()[0]
    cache.add(key, 0, seconds)
    return cache.incr(key)


def window(duration: int, now: float | None = None) -> tuple[int, float]:
    """The current window's number and the seconds left in it."""
    now = time.time() if now is None else now
    number = int(now // duration)
    return number, (number + 1) * duration - now


def hit(key: str, rate: tuple[int, int]) -> float | None:
    """Count one more under `key`; the seconds to wait if that passes the rate, else None."""
    limit, duration = rate
    number, left = window(duration)
    try:
        return left if count(f"{key}:{number}", duration + 1) > limit else None
    except Exception:
        logger.warning("rate limit %s could not reach the cache; allowing", key, exc_info=True)
        return None


def address_key(address: str | None) -> str:
    return f"login:address:{address or 'unknown'}"


def _user_keys(username: str, address: str | None) -> list[str]:
    """Failures are counted for the name from this address, and for the name from anywhere. The name is
    hashed: whatever was typed, the key is short and of characters every cache accepts."""
    name = hashlib.sha256(username.strip().lower()[:150].encode()).hexdigest()[:32]
    return [f"login:user:{name}:from:{address or 'unknown'}", f"login:user:{name}"]


def login_address_rate() -> tuple[int, int]:
    return parse_rate(settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["auth"])


def login_failure_rates() -> list[tuple[int, int]]:
    """(from this address, from anywhere): a name is locked for one address after LOGIN_FAILURES_PER_USER,
    and for everyone only after ten times as many, so that nobody can lock a colleague out cheaply."""
    limit, duration = parse_rate(settings.LOGIN_FAILURES_PER_USER)
    return [(limit, duration), (10 * limit, duration)]


def login_attempt(username: str, address: str | None) -> float | None:
    """Count a login attempt from `address`; the seconds to wait if it must be refused unread: too many
    attempts from that address, or too many failures for that user name."""
    wait = hit(address_key(address), login_address_rate())
    return wait if wait is not None else user_locked(username, address)


def user_locked(username: str, address: str | None) -> float | None:
    """The seconds left if `username` has failed too often (from `address`, or from anywhere), else None."""
    for key, (limit, duration) in zip(_user_keys(username, address), login_failure_rates(), strict=True):
        number, left = window(duration)
        try:
            failures = cache.get(f"{key}:{number}") or 0
        except Exception:
            logger.warning("login limit could not reach the cache; allowing", exc_info=True)
            return None
        if int(failures) >= limit:
            return left
    return None


def login_failed(username: str, address: str | None) -> None:
    """Count a failed login against the user name; logged with the address."""
    logger.warning("failed login for %r from %s", username[:150], address)
    for key, (_limit, duration) in zip(_user_keys(username, address), login_failure_rates(), strict=True):
        number, _left = window(duration)
        try:
            count(f"{key}:{number}", duration + 1)
        except Exception:
            logger.warning("login limit could not reach the cache", exc_info=True)
            return
