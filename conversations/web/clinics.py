"""The session's active clinic: chosen at login when a user has several, re-checked on every request."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from conversations.access import SESSION_KEY
from conversations.models import Membership
from conversations.selectors import clinics_of, membership_for


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
    request.session[SESSION_KEY] = membership.clinic_id
    request._active_membership = membership


def active_clinic_context(request: HttpRequest) -> dict:
    """Template context: the active clinic and membership, where a signed-in user has one."""
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {}
    membership = active_membership(request)
    return {"active_membership": membership, "active_clinic": membership.clinic if membership else None}


@login_required
@require_http_methods(["GET", "POST"])
def choose_clinic(request: HttpRequest) -> HttpResponse:
    """Let a user who works for several clinics pick the one to work in."""
    clinics = list(clinics_of(request.user))
    error = None
    if request.method == "POST":
        try:
            clinic_id = int(request.POST.get("clinic_id", ""))
        except ValueError:
            clinic_id = None
        membership = membership_for(request.user, clinic_id) if clinic_id else None
        if membership is not None:
            activate(request, membership)
            return redirect("inbox")
        error = "Escolha uma das clínicas da lista."
    status = 400 if error else (200 if clinics else 403)
    return render(request, "conversations/choose_clinic.html", {"clinics": clinics, "error": error}, status=status)
