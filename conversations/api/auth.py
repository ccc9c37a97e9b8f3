"""Who is calling and for which clinic: JWT or session, re-checked against the database on every request."""

from dataclasses import dataclass

from rest_framework import exceptions, permissions
from rest_framework.authentication import SessionAuthentication as _SessionAuthentication
from rest_framework.request import Request
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.tokens import Token

from conversations.access import session_is_open
from conversations.models import Membership
from conversations.selectors import membership_for
from conversations.web.clinics import active_membership


@dataclass(frozen=True)
class ClinicAuth:
    """`request.auth` of the API: the caller's membership of the clinic it acts in, and its token if any."""

    membership: Membership | None
    token: Token | None = None


class ClinicJWTAuthentication(JWTAuthentication):
    """A bearer token whose user is active, still a member of the token's clinic, and not logged out."""

    def authenticate(self, request: Request):
        result = super().authenticate(request)
        if result is None:
            return None
        user, token = result
        membership = membership_for(user, token.get("clinic_id")) if token.get("clinic_id") else None
        if membership is None:
            raise exceptions.AuthenticationFailed(
                "This token's clinic membership has ended.", code="membership_revoked"
            )
        if not session_is_open(token.get("sid"), user):
            raise exceptions.AuthenticationFailed("This token was logged out.", code="session_revoked")
        return user, ClinicAuth(membership=membership, token=token)


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
