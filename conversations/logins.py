"""Whether a login is still open: an API session (its tokens' `sid`) or a browser session. A login ends with
a logout, a revocation, its expiry, or the password it was made with changing by any path (as Django's
session hash does for browsers). Below the actions and `access`, so both ask here."""

from importlib import import_module

from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY
from django.utils.crypto import constant_time_compare

from conversations.models import ApiSession

API_LOGIN_PREFIX = "api:"


def api_login_key(sid: str) -> str:
    """How a push subscription made with an API session's tokens names that login."""
    return f"{API_LOGIN_PREFIX}{sid}"


def _hash_matches(stamp: str | None, user) -> bool:
    # As Django's sessions: the hash under SECRET_KEY, or under a key being rotated out (SECRET_KEY_FALLBACKS).
    if not stamp:
        return False
    hashes = (user.get_session_auth_hash(), *user.get_session_auth_fallback_hash())
    return any(constant_time_compare(stamp, hashed) for hashed in hashes)


def session_is_open(sid: str | None, user) -> bool:
    """Whether the API session of a token (its `sid`) is still logged in, with the password it logged in
    with: a password changed since, by whatever path, ends it (as Django's session hash does for browsers)."""
    if not sid:
        return False
    stamp = (
        ApiSession.objects.filter(sid=sid, user=user, revoked_at__isnull=True)
        .values_list("auth_hash", flat=True)
        .first()
    )
    return _hash_matches(stamp, user)


def browser_session_is_open(session_key: str, user) -> bool:
    """Whether this browser session is still `user`'s login, unexpired, with the password it logged in with."""
    if not session_key:
        return False
    store = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    if not store.exists(session_key):
        return False  # logged out, expired, or flushed
    return str(store.get(SESSION_KEY)) == str(user.pk) and _hash_matches(store.get(HASH_SESSION_KEY), user)


def login_is_open(login_key: str, user) -> bool:
    """A login named as push subscriptions name theirs: an API session's `api:<sid>`, or a browser's session key."""
    if not user.is_active:
        return False
    if login_key.startswith(API_LOGIN_PREFIX):
        return session_is_open(login_key.removeprefix(API_LOGIN_PREFIX), user)
    return browser_session_is_open(login_key, user)
