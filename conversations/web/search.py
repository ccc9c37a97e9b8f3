"""`/search/?q=`: the clinic's messages whose text matches, best first; each opens its conversation at the
message found."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from rest_framework.exceptions import ValidationError

from conversations import search
from conversations.actions.audit import record_search
from conversations.api import cursors
from conversations.models import Conversation, Membership
from conversations.storable import storable
from conversations.web.inbox import workspace

PAGE = 20


def search_page(request: HttpRequest, membership: Membership) -> HttpResponse:
    clinic = membership.clinic
    q = storable(request.GET.get("q") or "").strip()[:200]
    context = {"clinic": clinic, "q": q, "section": "search", "results": [], "next_cursor": None, "error": ""}
    if len(q) >= 2:
        try:
            offset = (
                cursors.decode_offset(request.GET["cursor"], most=search.WINDOW) if request.GET.get("cursor") else 0
            )
        except ValidationError:
            offset = 0
        hits, more = search.search_messages(clinic, q, offset=offset, limit=PAGE)
        record_search(actor=request.user, clinic_id=clinic.pk, found=len(hits), ip=request.META.get("REMOTE_ADDR"))
        threads = Conversation.objects.filter(clinic=clinic, pk__in={hit.conversation_id for hit in hits})
        patients = {thread.pk: thread.contact for thread in threads.select_related("contact")}
        context["results"] = [(hit, patients.get(hit.conversation_id)) for hit in hits]
        context["next_cursor"] = cursors.encode(offset + len(hits)) if more else None
    elif q:
        context["error"] = "Digite ao menos duas letras."
    return render(request, "conversations/search.html", context)


search_page = workspace(search_page)
