"""Actions on API sessions: logging in through the API, refreshing its tokens, and logging out."""

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from conversations.actions.audit import record_audit
from conversations.actions.push import forget_login_devices
from conversations.logins import api_login_key
from conversations.models import ApiSession, Membership


@transaction.atomic
def open_api_session(*, membership: Membership, ip: str | None = None) -> ApiSession:
    user = membership.user
    session = ApiSession.objects.create(user=user, clinic=membership.clinic, auth_hash=user.get_session_auth_hash())
    membership.user.last_login = timezone.now()
    membership.user.save(update_fields=["last_login"])
    record_audit(clinic_id=membership.clinic_id, actor=membership.user, action="api.login", obj=session, ip=ip)
    return session


@transaction.atomic
def revoke_api_session(*, sid: str, user: AbstractBaseUser, ip: str | None = None) -> bool:
    """Revoke every token of the session; revoking twice changes nothing."""
    session = ApiSession.objects.select_for_update().filter(sid=sid, user=user).first()
    if session is None or session.revoked_at is not None:
        return False
    session.revoked_at = timezone.now()
    session.save(update_fields=["revoked_at"])
    record_audit(clinic_id=session.clinic_id, actor=user, action="api.logout", obj=session, ip=ip)
    forget_login_devices(api_login_key(sid))  # the devices it subscribed are told nothing more
    return True


class RefreshReused(Exception):
    """The refresh token was spent meanwhile (by a concurrent refresh): it gives nothing more."""


@transaction.atomic
def rotate_refresh_token(refresh: RefreshToken, *, role: str) -> RefreshToken:
    """Spend `refresh` and return its successor (with the membership's current role). A token is spent
    once: of two refreshes racing with it, the database's unique blacklist entry lets exactly one through,
    and the other raises RefreshReused. The successor ends when the login's first refresh token does
    (JWT_REFRESH_DAYS after the login): refreshing never lengthens a session, so a stolen refresh token
    cannot be kept alive for ever."""
    _entry, spent_now = refresh.blacklist()
    if not spent_now:
        raise RefreshReused()
    refresh["role"] = role  # a changed role takes effect from here
    refresh.set_jti()
    refresh.set_iat()  # its `exp` stays the login's
    refresh.outstand()
    return refresh


def access_token_of(refresh: RefreshToken) -> AccessToken:
    """An access token from `refresh` that ends no later than the session does."""
    access = refresh.access_token
    access["exp"] = min(access["exp"], refresh["exp"])
    return access
