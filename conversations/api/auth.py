"""Who is calling and for which clinic: a JWT (its database checks remembered briefly, forgotten when access
changes, and never remembered from a lookup a change overlapped) or the browser's session (re-checked on
every request)."""

from dataclasses import dataclass

from rest_framework import exceptions, permissions
from rest_framework.authentication import SessionAuthentication as _SessionAuthentication
from rest_framework.request import Request
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import Token

from conversations.access import active_membership, remember_membership, remembered_membership, session_is_open
from conversations.models import Membership
from conversations.selectors import membership_for
from realtime import auth as stream_auth


@dataclass(frozen=True)
class ClinicAuth:
    """`request.auth` of the API: the caller's membership of the clinic it acts in, and its token if any."""

    membership: Membership | None
    token: Token | None = None


class ClinicJWTAuthentication(JWTAuthentication):
    """A bearer token whose user is active, still a member of the token's clinic, and not logged out.

    The token's signature and expiry are checked on every request; the database checks are remembered
    for a short while per token family, and forgotten at once when the user's access changes
    (access.remembered_membership)."""

    def authenticate(self, request: Request):
        header = self.get_header(request)
        raw = self.get_raw_token(header) if header is not None else None
        if raw is None:
            return None
        token = self.get_validated_token(raw)
        sid, clinic_id = token.get("sid"), token.get("clinic_id")
        try:
            user_id = int(token[api_settings.USER_ID_CLAIM])
        except (KeyError, TypeError, ValueError):
            raise exceptions.AuthenticationFailed(
                "Token contained no recognizable user.", code="token_not_valid"
            ) from None
        membership = remembered_membership(user_id, clinic_id, sid) if sid and clinic_id else None
        if membership is None:
            since = stream_auth.changes()  # a change of access heard from here on is not remembered as access
            user = self.get_user(token)
            membership = membership_for(user, clinic_id) if clinic_id else None
            if membership is None:
                raise exceptions.AuthenticationFailed(
                    "This token's clinic membership has ended.", code="membership_revoked"
                )
            if not session_is_open(sid, user):
                raise exceptions.AuthenticationFailed(
                    "This token's session has ended (logged out, or the password changed); log in again.",
                    code="session_revoked",
                )
            remember_membership(membership, sid, since)
        return membership.user, ClinicAuth(membership=membership, token=token)


class ClinicSessionAuthentication(_SessionAuthentication):
    """The browser's session (with CSRF on writes) and its active clinic."""

    def authenticate(self, request: Request):
        result = super().authenticate(request)
        if result is None:
            return None
        user, _ = result
        return user, ClinicAuth(membership=active_membership(request._request))


class IsClinicMember(permissions.BasePermission):
    """The caller acts in a clinic it belongs to; views read it from `request.auth.membership`."""

    def has_permission(self, request: Request, view) -> bool:
        if not request.user or not request.user.is_authenticated:
            return False
        if not isinstance(request.auth, ClinicAuth) or request.auth.membership is None:
            raise exceptions.PermissionDenied(
                "Choose a clinic first (the inbox asks at login), or get a token with clinic_id.",
                code="no_active_clinic",
            )
        return True


class IsClinicAdmin(IsClinicMember):
    """A clinic admin, or a superuser of the support team."""

    def has_permission(self, request: Request, view) -> bool:
        if request.user and request.user.is_authenticated and request.user.is_superuser:
            return True
        return super().has_permission(request, view) and request.auth.membership.role == "admin"
