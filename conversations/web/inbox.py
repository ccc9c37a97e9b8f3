"""The inbox page: the active clinic's conversations, rendered on the server (the live UI builds on it)."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from conversations.selectors import clinics_of, conversation_list_for, membership_for
from conversations.web.clinics import activate, active_membership
from realtime.events import latest_seq

PAGE_SIZE = 50


@login_required
def inbox(request: HttpRequest) -> HttpResponse:
    membership = active_membership(request)
    if membership is None:
        clinics = list(clinics_of(request.user)[:2])
        if len(clinics) != 1:
            return redirect("choose_clinic")
        membership = membership_for(request.user, clinics[0].pk)
        activate(request, membership)
    clinic = membership.clinic
    # Read before the list: the page's stream resumes from here, so nothing between the two is missed.
    seq = latest_seq(clinic.pk)
    status = request.GET.get("status") or ""
    conversations = conversation_list_for(clinic, request.user)
    if status in ("open", "pending", "resolved"):
        conversations = conversations.filter(status=status)
    return render(
        request,
        "conversations/inbox.html",
        {"clinic": clinic, "conversations": conversations[:PAGE_SIZE], "status": status, "seq": seq},
    )
