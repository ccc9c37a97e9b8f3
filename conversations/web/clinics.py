"""The clinic a browser session works in, chosen at login when a user has several (the session's active
clinic itself is access.active_membership's), and the pages' context about it."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods

from conversations.access import activate, active_membership
from conversations.selectors import clinics_of, membership_for


def active_clinic_context(request: HttpRequest) -> dict:
    """Template context: the active clinic and membership, where a signed-in user has one."""
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {}
    membership = active_membership(request)
    return {"active_membership": membership, "active_clinic": membership.clinic if membership else None}


def _next(request: HttpRequest) -> str:
    """Where to go once a clinic is chosen (a page of this site only), or ''."""
    wanted = request.POST.get("next") or request.GET.get("next") or ""
    allowed = url_has_allowed_host_and_scheme(
        wanted, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return wanted if wanted.startswith("/") and allowed else ""


@login_required
@require_http_methods(["GET", "POST"])
def choose_clinic(request: HttpRequest) -> HttpResponse:
    """Let a user who works for several clinics pick the one to work in, then go on to the page they wanted
    (`next`: a notification's conversation, say)."""
    clinics = list(clinics_of(request.user))
    error = None
    wanted = _next(request)
    if request.method == "POST":
        try:
            clinic_id = int(request.POST.get("clinic_id", ""))
        except ValueError:
            clinic_id = None
        membership = membership_for(request.user, clinic_id) if clinic_id else None
        if membership is not None:
            activate(request, membership)
            return redirect(wanted or "inbox")
        error = "Escolha uma das clínicas da lista."
    status = 400 if error else (200 if clinics else 403)
    context = {"clinics": clinics, "error": error, "next": wanted}
    return render(request, "conversations/choose_clinic.html", context, status=status)
