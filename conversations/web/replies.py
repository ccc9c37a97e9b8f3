"""`/quick-replies/`: the clinic's saved answers. Every member sees them; its admins add, change and remove
them here with plain forms (each post calls one action and comes back)."""

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from conversations import selectors
from conversations.actions.replies import VARIABLES, change_quick_reply, create_quick_reply, delete_quick_reply
from conversations.errors import ActionError
from conversations.models import Membership, Role
from conversations.storable import storable
from conversations.web.inbox import workspace
from conversations.web.presenters import as_id


def quick_replies(request: HttpRequest, membership: Membership) -> HttpResponse:
    clinic = membership.clinic
    replies = selectors.quick_replies_of(clinic)
    if request.method == "POST":
        ip = request.META.get("REMOTE_ADDR")
        shortcut, content = storable(request.POST.get("shortcut", "")), storable(request.POST.get("content", ""))
        lines = storable(request.POST.get("buttons", "")).splitlines()
        buttons = [line.strip() for line in lines if line.strip()]
        action = request.POST.get("action")
        try:
            if action == "create":
                create_quick_reply(
                    clinic=clinic, actor=request.user, shortcut=shortcut, content=content, buttons=buttons, ip=ip
                )
                messages.success(request, f"Resposta /{shortcut.strip().lstrip('/').lower()} salva.")
            else:
                wanted = as_id(request.POST.get("id"))
                reply = replies.filter(pk=wanted).first() if wanted else None
                if reply is None:
                    messages.error(request, "Essa resposta rápida não existe mais.")
                elif action == "delete":
                    delete_quick_reply(reply=reply, actor=request.user, ip=ip)
                    messages.success(request, f"Resposta /{reply.shortcut} removida.")
                else:
                    change_quick_reply(
                        reply=reply, actor=request.user, shortcut=shortcut, content=content, buttons=buttons, ip=ip
                    )
                    messages.success(request, f"Resposta /{reply.shortcut} salva.")
        except ActionError as refused:
            messages.error(request, f"Não foi salva: {refused.detail}")
        return redirect("quick-replies")
    return render(
        request,
        "conversations/quick_replies.html",
        {
            "clinic": clinic,
            "replies": replies,
            "can_manage": membership.role == Role.ADMIN,
            "variables": VARIABLES,
            "section": "quick-replies",
        },
    )


quick_replies = workspace(quick_replies, methods=("GET", "POST"))
