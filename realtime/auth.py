"""Who a WebSocket belongs to: the session's user and clinic, or a JWT (header or first frame).

Every check runs in one sync function, called through database_sync_to_async, so the event loop never
blocks on the database.
"""

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.utils import timezone
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import AccessToken

from conversations.api.auth import session_is_open
from conversations.models import Membership
from conversations.selectors import membership_for
from conversations.web.clinics import SESSION_KEY

CLOSE_NOT_AUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_AUTH_TIMEOUT = 4408
CLOSE_RATE_LIMITED = 4429


@dataclass(frozen=True)
class Caller:
    membership: Membership
    expires_at: float | None = None  # the token's exp (epoch seconds); None for a session
    sid: str | None = None  # the API session id of a token
    session_key: str | None = None  # the browser session of a cookie login


class Refused(Exception):
    def __init__(self, code: int, reason: str):
        super().__init__(reason)
        self.code, self.reason = code, reason


def _caller(membership: Membership | None, **fields) -> Caller:
    if membership is None:
        raise Refused(CLOSE_FORBIDDEN, "not a member of this clinic")
    return Caller(membership=membership, **fields)


def by_session(user, session) -> Caller:
    if user is None or not user.is_authenticated:
        raise Refused(CLOSE_NOT_AUTHENTICATED, "not logged in")
    clinic_id = session.get(SESSION_KEY) if session is not None else None
    if not clinic_id:
        raise Refused(CLOSE_FORBIDDEN, "no clinic chosen in this session")
    return _caller(membership_for(user, clinic_id), session_key=session.session_key)


def by_token(raw: str) -> Caller:
    """A valid, unexpired access token of an active user whose membership and API session still hold."""
    try:
        token = AccessToken(raw)
    except TokenError as error:
        raise Refused(CLOSE_NOT_AUTHENTICATED, f"token: {error}") from None
    user = get_user_model().objects.filter(pk=token.get("user_id"), is_active=True).first()
    if user is None:
        raise Refused(CLOSE_NOT_AUTHENTICATED, "the token's user is inactive or gone")
    if not session_is_open(token.get("sid"), user):
        raise Refused(CLOSE_NOT_AUTHENTICATED, "the token was logged out")
    return _caller(membership_for(user, token.get("clinic_id")), expires_at=token["exp"], sid=token.get("sid"))


def still_allowed(caller: Caller) -> Refused | None:
    """Re-checked while the socket lives: a deactivated user, a lost membership or a logout closes it."""
    user = get_user_model().objects.filter(pk=caller.membership.user_id, is_active=True).first()
    if user is None:
        return Refused(CLOSE_NOT_AUTHENTICATED, "user deactivated")
    if membership_for(user, caller.membership.clinic_id) is None:
        return Refused(CLOSE_FORBIDDEN, "membership ended")
    if caller.sid is not None and not session_is_open(caller.sid, caller.membership.user):
        return Refused(CLOSE_NOT_AUTHENTICATED, "logged out")
    if (
        caller.session_key is not None
        and not Session.objects.filter(session_key=caller.session_key, expire_date__gt=timezone.now()).exists()
    ):
        return Refused(CLOSE_NOT_AUTHENTICATED, "logged out")
    return None


def bearer_from_headers(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name.lower() == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None
