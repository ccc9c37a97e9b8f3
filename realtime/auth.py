"""Who a connection belongs to: the caller, as the domain's access rules (handed down at start-up) say.

The stream does not know how staff log in or what a membership is: `conversations.access` gives it an
`Access` in `ConversationsConfig.ready()`. What it keeps is a short-lived cache of callers per
credential, so that a thousand sockets of one login cost one database lookup; a change of access (a
membership removed, a user deactivated, a logout) is a control message that empties it for that user. A
lookup that a change of that user's access (or everyone's) overlapped is not kept: it may have read the
access as it was before. Sockets of one credential that connect together (a reconnect storm after a
deploy) share the one lookup under way, as long as no access change was heard since it began.
"""

import asyncio
import dataclasses
import threading
import time
from dataclasses import dataclass, field
from typing import Protocol

from django.http.cookie import parse_cookie

from realtime import db

CLOSE_NOT_AUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_AUTH_TIMEOUT = 4408
CLOSE_RATE_LIMITED = 4429
CACHE_SECONDS = 60.0  # a backstop only: access changes empty the cache at once


@dataclass(frozen=True, eq=False)
class Caller:
    """A member of a clinic, as the stream needs it: ids, what `hello` shows, and the credential's family."""

    user_id: int
    clinic_id: int
    user: dict  # {"id", "name", "role"} for hello
    clinic: dict  # {"id", "name", "slug", "timezone"} for hello
    sid: str | None = None  # the API session of a token
    session_key: str | None = None  # the browser session of a cookie
    session_expires_at: float | None = None  # when that browser session ends (epoch seconds)
    key: tuple = field(default=())  # the credential family (what the cache and the re-checks group by)

    @property
    def name(self) -> str:
        return self.user["name"]


@dataclass(frozen=True)
class TokenClaims:
    user_id: int
    clinic_id: int | None
    sid: str | None
    expires_at: float


class Refused(Exception):
    """Access refused: `code` is the WebSocket close code (4401, 4403), `api_code` the HTTP API's code."""

    def __init__(self, code: int, reason: str, api_code: str = "not_authenticated"):
        super().__init__(reason)
        self.code, self.reason, self.api_code = code, reason, api_code


class Access(Protocol):
    """What the domain hands the stream (conversations.access.StreamAccess)."""

    def token_claims(self, raw: str) -> TokenClaims:
        """Checks an access token's signature and expiry, without the database; raises Refused."""

    def caller_for_token(self, claims: TokenClaims) -> Caller:
        """The token's active user in its clinic, with its API session open; raises Refused."""

    def caller_for_session(self, session_key: str) -> Caller | None:
        """The browser session's user in its active clinic; None when nobody is logged in; raises Refused."""

    def still_allowed(self, caller: Caller) -> Refused | None:
        """Re-checked when access may have changed: the user, the membership, the login."""

    def session_expires_at(self, session_key: str) -> float | None:
        """When the browser session ends now (epoch seconds; it may have been extended), or None."""

    def conversation_in_clinic(self, clinic_id: int, conversation_id: int) -> bool: ...

    def mark_read(self, caller: Caller, conversation_id: int, message_id: int) -> str | None:
        """Marks read as the API does; a message saying why not, or None."""


_access: Access | None = None
_cache: dict[tuple, tuple[Caller, float]] = {}
_changes = 0  # access changes this process has heard of (from any thread: under _lock)
_changed_at: dict[int, int] = {}  # user id → the count at their last change
_everyone_changed_at = 0  # the count when everyone's access was last to be looked at again
_lock = threading.Lock()
_looking: dict[tuple, tuple[asyncio.Future, int]] = {}  # credential → its lookup under way, and its `since`


def configure(access: Access) -> None:
    global _access
    _access = access
    _cache.clear()


def access() -> Access:
    if _access is None:
        raise RuntimeError(
            "realtime has no Access: the domain app hands one down at start-up "
            "(conversations.apps.ConversationsConfig.ready calls realtime.auth.configure)."
        )
    return _access


def cached(key: tuple) -> Caller | None:
    found = _cache.get(key)
    if found is None:
        return None
    caller, stored_at = found
    if time.monotonic() - stored_at > CACHE_SECONDS:
        _cache.pop(key, None)
        return None
    return caller


def changes() -> int:
    """Where the count of access changes heard by this process stands: a check begun at that count may
    have read a user's access as it was before, if `changed_since` says so."""
    return _changes


def changed_since(user_id: int, since: int) -> bool:
    """Whether `user_id`'s access (or everyone's) changed after the count stood at `since`."""
    return max(_changed_at.get(user_id, 0), _everyone_changed_at) > since


def remember(caller: Caller, since: int) -> Caller:
    """Keep `caller` for its credential, unless its access changed since its lookup began (at `since`)."""
    with _lock:
        if not changed_since(caller.user_id, since):
            _cache[caller.key] = (caller, time.monotonic())
    return caller


def forget(user_id: int | None = None) -> None:
    """Drop cached callers: a user's (their access changed), or all (the bus was away). Any thread."""
    global _changes, _everyone_changed_at
    with _lock:
        _changes += 1
        if user_id is None:
            _everyone_changed_at = _changes
            _cache.clear()
            return
        _changed_at[user_id] = _changes
        for key, (caller, _) in list(_cache.items()):
            if caller.user_id == user_id:
                _cache.pop(key, None)


async def by_token(raw: str) -> tuple[Caller, float]:
    """The caller of an access token, and when the token expires; raises Refused."""
    claims = access().token_claims(raw)  # signature and expiry: no database
    key = ("token", claims.user_id, claims.clinic_id, claims.sid)
    caller = cached(key) or await _look_up(key, access().caller_for_token, claims)
    return caller, claims.expires_at


async def by_session(session_key: str) -> Caller | None:
    """The caller of a browser session, None when nobody is logged in there; raises Refused."""
    key = ("session", session_key)
    return cached(key) or await _look_up(key, access().caller_for_session, session_key)


async def _look_up(key: tuple, lookup, credential) -> Caller | None:
    """The credential's caller from the database; callers of one credential at once share one lookup
    (and its Refused). A lookup is joined only while no access change was heard since it began: a later
    caller must not be answered with access read before a change. The lookup runs as its own task, so
    that one caller going away does not cancel it for the others."""
    under_way = _looking.get(key)
    if under_way is None or under_way[1] != _changes:
        since = _changes
        task = asyncio.ensure_future(_load(key, lookup, credential, since))
        under_way = _looking[key] = (task, since)
        task.add_done_callback(lambda done: _looked_up(key, done))
    return await asyncio.shield(under_way[0])


async def _load(key: tuple, lookup, credential, since: int) -> Caller | None:
    found = await db.run(lookup, credential)
    return None if found is None else remember(dataclasses.replace(found, key=key), since)


def _looked_up(key: tuple, task: asyncio.Future) -> None:
    if _looking.get(key, (None,))[0] is task:
        del _looking[key]
    if not task.cancelled():
        task.exception()  # retrieved: every caller that waited got it raised already


def bearer_from_headers(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name.lower() == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None


def cookie_from_headers(headers: list[tuple[bytes, bytes]], name: str) -> str | None:
    for header, value in headers:
        if header.lower() == b"cookie":
            found = parse_cookie(value.decode("latin-1")).get(name)
            if found:
                return found
    return None
