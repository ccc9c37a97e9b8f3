"""`/patients/<id>/merge/`: a clinic admin makes two records of one patient one. The page finds the other
record (by name or any form of the phone), names both with their message counts, and merges on a
confirmed post (one action); the kept patient's conversation opens after."""

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseForbidden
from django.shortcuts import redirect, render

from conversations import selectors
from conversations.actions.patients import merge_patients, merge_preview
from conversations.errors import ActionError
from conversations.models import Conversation, Membership, Role
from conversations.web.inbox import workspace
from conversations.web.presenters import as_id


def merge_page(request: HttpRequest, membership: Membership, contact_id: int) -> HttpResponse:
    if membership.role != Role.ADMIN:
        return HttpResponseForbidden("Só os administradores da clínica unem cadastros de pacientes.")
    clinic = membership.clinic
    kept = selectors.contact_of(clinic, contact_id)
    if kept is None:
        raise Http404("No such patient in your clinic.")
    wanted = as_id(request.POST.get("merge_id") or request.GET.get("with"))
    other = selectors.contact_of(clinic, wanted) if wanted and wanted != kept.pk else None
    if request.method == "POST":
        if other is None or request.POST.get("confirm") != "yes":
            messages.error(request, "Escolha o outro cadastro e confirme para unir.")
            return redirect("merge-patients", kept.pk)
        try:
            merge_patients(kept=kept, merged=other, actor=request.user, ip=request.META.get("REMOTE_ADDR"))
        except ActionError as refused:
            messages.error(request, f"Cadastros não unidos: {refused.detail}")
            return redirect("merge-patients", kept.pk)
        messages.success(request, "Cadastros unidos: o histórico do paciente está todo aqui.")
        latest = Conversation.objects.filter(clinic=clinic, contact=kept).order_by("-last_message_at", "-id").first()
        return redirect("conversation", latest.pk) if latest is not None else redirect("inbox")
    q = (request.GET.get("q") or "").strip()
    candidates = [c for c in selectors.contact_page(clinic, q=q, limit=20) if c.pk != kept.pk][:20] if q else []
    return render(
        request,
        "conversations/merge_patients.html",
        {
            "clinic": clinic,
            "kept": kept,
            "q": q,
            "candidates": candidates,
            "preview": merge_preview(kept, other) if other is not None else None,
            "other": other,
        },
    )


merge_page = workspace(merge_page, methods=("GET", "POST"))
