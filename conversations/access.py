"""Who is calling and for which clinic, in one place: the browser's session and its active clinic, an API
token (JWT) and its API session, for the API, the pages, the event stream and the long-poll.

The stream (realtime) does not import this module: `ConversationsConfig.ready()` hands it `StreamAccess`.
"""

import threading
import time
from importlib import import_module

from django.conf import settings
from django.contrib.auth import get_user, get_user_model
from django.contrib.sessions.models import Session
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import AccessToken

import realtime
from conversations.actions.messages import mark_read
from conversations.errors import ActionError
from conversations.logins import session_is_open
from conversations.models import Clinic, Conversation, Membership, Message
from conversations.selectors import membership_for
from realtime import auth as stream_auth
from realtime.auth import CLOSE_FORBIDDEN, CLOSE_NOT_AUTHENTICATED, Caller, Refused, TokenClaims

# The session key of the clinic a browser session works in (chosen at login when a user has several).
SESSION_KEY = "active_clinic_id"


# --- The browser session's clinic ------------------------------------------------------------------------


def active_membership(request: HttpRequest) -> Membership | None:
    """The user's membership of the session's clinic; None if unset or no longer valid.

    Checked against the database each time, so a removed membership loses access at once.
    """
    cached = getattr(request, "_active_membership", False)
    if cached is not False:
        return cached
    clinic_id = request.session.get(SESSION_KEY)
    membership = membership_for(request.user, clinic_id) if clinic_id else None
    if membership is None and clinic_id:
        request.session.pop(SESSION_KEY, None)
    request._active_membership = membership
    return membership


def activate(request: HttpRequest, membership: Membership) -> None:
    """Make `membership`'s clinic the one the browser session works in. A switch from another clinic is
    saved at once and announced as a change of the user's access: the session's sockets and long-polls of
    the old clinic are checked again, in every process, and closed (their pages reload into the new one),
    and no cached caller keeps the old clinic."""
    previous = request.session.get(SESSION_KEY)
    request.session[SESSION_KEY] = membership.clinic_id
    request._active_membership = membership
    if previous is not None and previous != membership.clinic_id:
        request.session.save()  # before the announcement: the re-checks must read the new clinic
        user_id = membership.user_id
        forget_members({"user_id": user_id})
        transaction.on_commit(lambda: realtime.access_changed(user_id), robust=True)


# --- The API's callers, remembered -------------------------------------------------------------------
# A token's checks (its user active, a member of its clinic, its API session open) are three queries a
# request; a client polling the API would repeat them for nothing. They are remembered per token family
# for MEMBER_SECONDS at most, and forgotten at once when that user's access changes (the "access" control
# message, which reaches every server process). A lookup that such a change overlapped is not remembered
# (it may have read the access as it was before): the change counter is the stream's (realtime.auth).
MEMBER_SECONDS = 30.0
_members: dict[tuple, tuple[dict, dict, dict, float]] = {}
_members_lock = threading.Lock()


def remembered_membership(user_id: int, clinic_id: int, sid: str) -> Membership | None:
    """A fresh Membership (with its user and clinic) built from what was remembered, or None."""
    found = _members.get((user_id, clinic_id, sid))
    if found is None or time.monotonic() - found[3] > MEMBER_SECONDS:
        return None
    user_fields, clinic_fields, membership_fields, _ = found
    return Membership(user=get_user_model()(**user_fields), clinic=Clinic(**clinic_fields), **membership_fields)


def remember_membership(membership: Membership, sid: str, since: int) -> None:
    """Remember a token's checks, unless its user's access changed since they began (`since`:
    `realtime.auth.changes()` before the lookup)."""

    def fields(obj) -> dict:
        return {f.attname: getattr(obj, f.attname) for f in obj._meta.concrete_fields}

    membership_fields = {k: v for k, v in fields(membership).items() if k not in ("user_id", "clinic_id")}
    with _members_lock:
        if stream_auth.changed_since(membership.user_id, since):
            return
        _members[membership.user_id, membership.clinic_id, sid] = (
            fields(membership.user),
            fields(membership.clinic),
            membership_fields,
            time.monotonic(),
        )


def forget_members(message: dict | None = None) -> None:
    """The control message "access" (and the change itself, in the process that makes it): forget that
    user's (every user's, for no user), counting the change so that a lookup under way is not remembered."""
    user_id = (message or {}).get("user_id")
    with _members_lock:
        stream_auth.forget(user_id)
        for key in [k for k in _members if user_id is None or k[0] == user_id]:
            _members.pop(key, None)


def display_name(user) -> str:
    return user.get_full_name() or user.get_username()


def _caller(membership: Membership, **credential) -> Caller:
    user, clinic = membership.user, membership.clinic
    return Caller(
        user_id=user.pk,
        clinic_id=clinic.pk,
        user={"id": user.pk, "name": display_name(user), "role": membership.role},
        clinic={"id": clinic.pk, "name": clinic.name, "slug": clinic.slug, "timezone": clinic.timezone},
        **credential,
    )


def _session_store(session_key: str):
    return import_module(settings.SESSION_ENGINE).SessionStore(session_key)


def _session_expiry(session_key: str) -> float | None:
    """When a database-backed browser session ends; None for other session engines."""
    if not settings.SESSION_ENGINE.endswith(("sessions.backends.db", "sessions.backends.cached_db")):
        return None
    ends = Session.objects.filter(session_key=session_key).values_list("expire_date", flat=True).first()
    return ends.timestamp() if ends else None


class StreamAccess:
    """realtime.auth.Access for this domain: members of a clinic, by token or by browser session."""

    def token_claims(self, raw: str) -> TokenClaims:
        try:
            token = AccessToken(raw)
        except TokenError as error:
            raise Refused(CLOSE_NOT_AUTHENTICATED, f"token: {error}", api_code="token_not_valid") from None
        try:
            user_id, clinic_id = int(token["user_id"]), token.get("clinic_id")
        except (KeyError, TypeError, ValueError):
            raise Refused(CLOSE_NOT_AUTHENTICATED, "token: no user", api_code="token_not_valid") from None
        return TokenClaims(user_id=user_id, clinic_id=clinic_id, sid=token.get("sid"), expires_at=float(token["exp"]))

    def caller_for_token(self, claims: TokenClaims) -> Caller:
        user = get_user_model().objects.filter(pk=claims.user_id, is_active=True).first()
        if user is None:
            raise Refused(CLOSE_NOT_AUTHENTICATED, "the token's user is inactive or gone", api_code="user_inactive")
        if not session_is_open(claims.sid, user):
            raise Refused(CLOSE_NOT_AUTHENTICATED, "the token was logged out", api_code="session_revoked")
        membership = membership_for(user, claims.clinic_id) if claims.clinic_id else None
        if membership is None:
            raise Refused(CLOSE_FORBIDDEN, "not a member of this clinic", api_code="membership_revoked")
        return _caller(membership, sid=claims.sid)

    def caller_for_session(self, session_key: str) -> Caller | None:
        request = HttpRequest()
        request.session = _session_store(session_key)
        user = get_user(request)  # Django's own checks: the backend, the password hash of the session
        if not user.is_authenticated:
            return None
        clinic_id = request.session.get(SESSION_KEY)
        if not clinic_id:
            raise Refused(CLOSE_FORBIDDEN, "no clinic chosen in this session", api_code="no_active_clinic")
        membership = membership_for(user, clinic_id)
        if membership is None:
            raise Refused(CLOSE_FORBIDDEN, "not a member of this clinic", api_code="no_active_clinic")
        return _caller(membership, session_key=session_key, session_expires_at=_session_expiry(session_key))

    def still_allowed(self, caller: Caller) -> Refused | None:
        """A deactivated user, a lost membership or a logout ends the connection."""
        user = get_user_model().objects.filter(pk=caller.user_id, is_active=True).first()
        if user is None:
            return Refused(CLOSE_NOT_AUTHENTICATED, "user deactivated")
        if membership_for(user, caller.clinic_id) is None:
            return Refused(CLOSE_FORBIDDEN, "membership ended")
        if caller.sid is not None and not session_is_open(caller.sid, user):
            return Refused(CLOSE_NOT_AUTHENTICATED, "logged out")
        if caller.session_key is not None:
            expiry = _session_expiry(caller.session_key)
            if expiry is not None and expiry <= timezone.now().timestamp():
                return Refused(CLOSE_NOT_AUTHENTICATED, "logged out")
            try:
                again = self.caller_for_session(caller.session_key)
            except Refused as refused:
                return refused
            if again is None or again.user_id != caller.user_id:
                return Refused(CLOSE_NOT_AUTHENTICATED, "logged out")
            if again.clinic_id != caller.clinic_id:
                return Refused(CLOSE_FORBIDDEN, "the session works in another clinic now", api_code="clinic_changed")
        return None

    def session_expires_at(self, session_key: str) -> float | None:
        return _session_expiry(session_key)

    def conversation_in_clinic(self, clinic_id: int, conversation_id: int) -> bool:
        return Conversation.objects.filter(pk=conversation_id, clinic_id=clinic_id).exists()

    def mark_read(self, caller: Caller, conversation_id: int, message_id: int) -> str | None:
        """Marks read as the API does; a message saying why not, or None."""
        conversation = Conversation.objects.filter(pk=conversation_id, clinic_id=caller.clinic_id).first()
        message = Message.objects.filter(conversation=conversation, pk=message_id).first() if conversation else None
        if message is None:
            return "No such message in a conversation of your clinic."
        user = get_user_model().objects.filter(pk=caller.user_id).first()
        try:
            mark_read(user=user, conversation=conversation, message=message)
        except ActionError as refused:
            return refused.detail
        return None
