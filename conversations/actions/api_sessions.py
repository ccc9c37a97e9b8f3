"""Actions on API sessions: logging in through the API, refreshing its tokens, and logging out."""

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone
from rest_framework_simplejwt.tokens import RefreshToken

from conversations.actions.audit import record_audit
from conversations.models import ApiSession, Membership


@transaction.atomic
def open_api_session(*, membership: Membership, ip: str | None = None) -> ApiSession:
    session = ApiSession.objects.create(user=membership.user, clinic=membership.clinic)
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
    return True


class RefreshReused(Exception):
    """The refresh token was spent meanwhile (by a concurrent refresh): it gives nothing more."""


@transaction.atomic
def rotate_refresh_token(refresh: RefreshToken, *, role: str) -> RefreshToken:
    """Spend `refresh` and return its successor (with the membership's current role). A token is spent
    once: of two refreshes racing with it, the database's unique blacklist entry lets exactly one through,
    and the other raises RefreshReused."""
    _entry, spent_now = refresh.blacklist()
    if not spent_now:
        raise RefreshReused()
    refresh["role"] = role  # a changed role takes effect from here
    refresh.set_jti()
    refresh.set_exp()
    refresh.set_iat()
    refresh.outstand()
    return refresh
