"""The workspace's writes as plain form posts, so a browser without scripts can still reply, change the
status and assign (the scripts use the API instead). Each posts, calls one action, and redirects back."""

import uuid
import zoneinfo
from datetime import UTC, datetime

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect

from conversations import selectors
from conversations.actions.conversations import UNCHANGED, update_conversation
from conversations.actions.labels import create_label
from conversations.actions.messages import mark_unread, send_outbound_message
from conversations.actions.notes import add_note
from conversations.actions.patients import correct_patient_record
from conversations.errors import ActionError
from conversations.models import Conversation, Membership
from conversations.storable import storable
from conversations.web.inbox import workspace
from conversations.web.presenters import as_id


def _conversation(membership: Membership, conversation_id: int) -> Conversation:
    conversation = selectors.conversation_of(membership.clinic, conversation_id)
    if conversation is None:
        raise Http404("No such conversation in your clinic.")
    return conversation


def _back(conversation: Conversation) -> HttpResponse:
    return redirect("conversation", conversation.pk)


def send_reply(request: HttpRequest, membership: Membership, conversation_id: int) -> HttpResponse:
    conversation = _conversation(membership, conversation_id)
    if request.POST.get("mode") == "note":
        return _write_note(request, conversation)
    try:
        client_id = uuid.UUID(request.POST.get("client_id", ""))  # rendered with the form: a re-post sends once
    except ValueError:
        client_id = None
    try:
        send_outbound_message(
            conversation=conversation,
            sender=request.user,
            content=storable(request.POST.get("content", "")),
            client_id=client_id,
            attachment=request.FILES.get("file"),
            ip=request.META.get("REMOTE_ADDR"),
        )
    except ActionError as refused:
        messages.error(request, f"Mensagem não enviada: {refused.detail}")
    return _back(conversation)


def _clinic_time(value: str, clinic) -> datetime | None:
    """A form's date and time (datetime-local, the clinic's wall clock) as an aware time; None if blank or
    not a time."""
    try:
        at = datetime.fromisoformat(value)
        at = at if at.tzinfo else at.replace(tzinfo=zoneinfo.ZoneInfo(clinic.timezone))
        return at.astimezone(UTC)
    except (ValueError, OverflowError):  # not a time, or past the calendar's end once in UTC
        return None


def new_label(request: HttpRequest, membership: Membership) -> HttpResponse:
    """A label made from the conversation's header (without scripts; the scripts use the API)."""
    try:
        create_label(
            clinic=membership.clinic,
            actor=request.user,
            name=storable(request.POST.get("name", "")),
            color=request.POST.get("color", ""),
            ip=request.META.get("REMOTE_ADDR"),
        )
    except ActionError as refused:
        messages.error(request, f"Etiqueta não criada: {refused.detail}")
    wanted = as_id(request.POST.get("conversation"))
    conversation = selectors.conversation_of(membership.clinic, wanted) if wanted else None
    return _back(conversation) if conversation is not None else redirect("inbox")


def _write_note(request: HttpRequest, conversation: Conversation) -> HttpResponse:
    try:
        add_note(
            conversation=conversation,
            author=request.user,
            content=storable(request.POST.get("content", "")),
            ip=request.META.get("REMOTE_ADDR"),
        )
    except ActionError as refused:
        messages.error(request, f"Nota não salva: {refused.detail}")
    return _back(conversation)


def change_conversation(request: HttpRequest, membership: Membership, conversation_id: int) -> HttpResponse:
    conversation = _conversation(membership, conversation_id)
    status = request.POST.get("status") or UNCHANGED
    assignee = UNCHANGED
    if "assignee" in request.POST:
        wanted = request.POST["assignee"]
        assignee = get_user_model().objects.filter(pk=as_id(wanted)).first() if as_id(wanted) else None
    labels = UNCHANGED
    if "set_labels" in request.POST:
        labels = [label for label in map(as_id, request.POST.getlist("labels")) if label is not None]
    snoozed_until = UNCHANGED
    if "snoozed_until" in request.POST:
        snoozed_until = _clinic_time(request.POST["snoozed_until"], membership.clinic)
        if snoozed_until is None and request.POST["snoozed_until"]:
            messages.error(request, "Não foi possível adiar: a data e a hora não foram entendidas.")
            return _back(conversation)
    try:
        update_conversation(
            conversation=conversation,
            actor=request.user,
            status=status,
            assignee=assignee,
            labels=labels,
            snoozed_until=snoozed_until,
            answered_by=request.POST.get("answered_by") or UNCHANGED,
            ip=request.META.get("REMOTE_ADDR"),
        )
    except ActionError as refused:
        messages.error(request, f"Não foi possível alterar: {refused.detail}")
    return _back(conversation)


def mark_conversation_unread(request: HttpRequest, membership: Membership, conversation_id: int) -> HttpResponse:
    """Unread again for this user; back to the list, since the open conversation would read it at once."""
    conversation = _conversation(membership, conversation_id)
    try:
        mark_unread(user=request.user, conversation=conversation)
    except ActionError as refused:
        messages.error(request, f"Não foi possível marcar como não lida: {refused.detail}")
        return _back(conversation)
    return redirect("inbox")


def correct_patient(request: HttpRequest, membership: Membership, conversation_id: int) -> HttpResponse:
    """The patient panel's *Corrigir cadastro* (the scripts send the same to the API)."""
    conversation = _conversation(membership, conversation_id)
    changes = {
        field: storable(request.POST[field])
        for field in ("name", "email", "notes")
        if field in request.POST and request.POST[field] != request.POST.get(f"was_{field}")  # only what changed here
    }
    if not changes:
        return _back(conversation)
    try:
        correct_patient_record(
            contact=conversation.contact, actor=request.user, changes=changes, ip=request.META.get("REMOTE_ADDR")
        )
    except ActionError as refused:
        messages.error(request, f"Cadastro não corrigido: {refused.detail}")
    return _back(conversation)


send_reply = workspace(send_reply, methods=("POST",))
correct_patient = workspace(correct_patient, methods=("POST",))
new_label = workspace(new_label, methods=("POST",))
mark_conversation_unread = workspace(mark_conversation_unread, methods=("POST",))
change_conversation = workspace(change_conversation, methods=("POST",))
