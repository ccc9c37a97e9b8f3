"""The staff workspace's pages: the inbox (list, open conversation, patient panel), the fragments its
scripts fetch to stay live, and the board. Everything is rendered here; the scripts only place it."""

import uuid
from datetime import timedelta
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import SimpleLazyObject
from django.utils.http import urlencode
from django.views.decorators.http import require_http_methods
from rest_framework.exceptions import ValidationError

from conversations import clinic_hours, selectors
from conversations.access import activate, active_membership
from conversations.actions.audit import record_reading
from conversations.api import cursors
from conversations.media import WHATSAPP_MEDIA
from conversations.models import Conversation, Membership, Message, MessageType
from conversations.voice import TRANSCRIBED
from conversations.web.presenters import (
    REACTION_CHOICES,
    STATUS_LABELS,
    STATUSES,
    TABS,
    TICKS,
    ListFilters,
    as_id,
    author_label,
    media_limits_text,
    message_sender,
    page_config,
    preview_prefix,
    staff_names,
    waiting_text,
)
from realtime.log import latest_seq

PAGE_SIZE = 50
MAX_FIRST_WINDOW = 200
MAX_AT_MESSAGE = 500
MESSAGE_TYPES = dict(MessageType.choices)
BOARD_COLUMN_SIZE = 100
# Sent by the scripts when they fetch a part of a page rather than the page.
FRAGMENT_HEADER = "X-Fragment"


def workspace(view, methods: tuple[str, ...] = ("GET",)):
    """A page of the active clinic's workspace: signed in, with a clinic chosen (asked when there are several).

    A fragment request answers 401/403 instead of redirecting, so the script can reload the page.
    """

    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        fragment = FRAGMENT_HEADER in request.headers
        if not request.user.is_authenticated:
            return HttpResponse(status=401) if fragment else redirect_to_login(request.get_full_path())
        membership = active_membership(request)
        if membership is None:
            clinics = list(selectors.clinics_of(request.user)[:2])
            if len(clinics) != 1:
                if fragment:
                    return HttpResponse(status=403)
                return redirect(f"{reverse('choose_clinic')}?{urlencode({'next': request.get_full_path()})}")
            membership = selectors.membership_for(request.user, clinics[0].pk)
            activate(request, membership)
        return view(request, membership, *args, **kwargs)

    return require_http_methods(list(methods))(wrapped)


QUOTE_CHARS = 120


def with_quotes(messages: list[Message], conversation: Conversation, viewer_id: int, names: dict[int, str]) -> None:
    """Each reply's `quoted`: who wrote the message it quotes and how it began (one query for the page),
    read now, so a quote of an edited or erased message says what that message says today."""
    wanted = {m.metadata.get("reply_to_message_id") for m in messages} - {None}
    if not wanted:
        return
    quoted = {q.pk: q for q in conversation.messages.filter(pk__in=[i for i in wanted if isinstance(i, int)])}
    for message in messages:
        found = quoted.get(message.metadata.get("reply_to_message_id"))
        if found is not None:
            found.conversation = conversation
            revoked = found.metadata.get("revoked_at") or found.metadata.get("revoke")
            text = "Mensagem apagada" if revoked else found.content or found.get_message_type_display()
            message.quoted = {
                "id": found.pk,
                "sender": message_sender(found, viewer_id, names),
                "text": text if len(text) <= QUOTE_CHARS else f"{text[: QUOTE_CHARS - 1]}…",
            }


def with_transcripts(messages: list[Message], conversation: Conversation) -> None:
    """Each audio's `transcript`, when the assistant posted one (an `audio_transcribed` action naming the
    message by its WhatsApp id or ours): shown under the audio, not as a message."""
    audios = {m.external_id: m for m in messages if m.message_type == "audio" and m.external_id}
    audios |= {str(m.pk): m for m in messages if m.message_type == "audio"}
    if not audios:
        return
    for action in conversation.actions.filter(action_type=TRANSCRIBED).order_by("created_at", "id"):
        data = action.action_data if isinstance(action.action_data, dict) else {}
        found = audios.get(str(data.get("message_id", "")))
        if found is not None and isinstance(data.get("transcript"), str):
            found.transcript = data["transcript"]


def list_rows(
    membership: Membership,
    filters: ListFilters,
    names: dict[int, str],
    *,
    after: tuple | None = None,
    ids: list[int] | None = None,
) -> tuple[list[Conversation], str | None]:
    """A page of the list for these filters, each row with the viewer's unread count and preview prefix."""
    viewer = membership.user
    rows = selectors.conversation_page(
        membership.clinic, **filters.page_kwargs(viewer.pk), after=after, limit=PAGE_SIZE, ids=ids
    )
    more, rows = len(rows) > PAGE_SIZE, rows[:PAGE_SIZE]
    unread = selectors.unread_counts_for(viewer, [row.pk for row in rows])
    hours, now = clinic_hours.of(membership.clinic_id), timezone.now()
    for row in rows:
        row.unread_count = unread.get(row.pk, 0)
        row.preview_prefix = preview_prefix(row, viewer.pk, names)
        _show_waiting(row, hours, now)
    if not more:
        return rows, None
    last = rows[-1]
    return rows, cursors.encode(last.awaiting_since if filters.status == "awaiting" else last.activity_at, last.pk)


def _show_waiting(row: Conversation, hours: clinic_hours.ClinicHours, now) -> None:
    """How long the patient has waited for the clinic's answer, counted in business hours, and whether
    that is past the clinic's first-response target (the scripts keep it ticking: waiting.js)."""
    row.waiting_text = row.waited_seconds = None
    if row.awaiting_since is None or row.status == Conversation.Status.RESOLVED:
        return
    row.waited_seconds = round(hours.business_seconds(row.awaiting_since, now))
    row.waiting_text = waiting_text(row.waited_seconds)
    row.waiting_late = row.waited_seconds > hours.first_response_target_minutes * 60
    row.waiting_base_at = int(now.timestamp() * 1000)


def waiting_clock(clinic_id: int, now=None) -> dict:
    """What the scripts need to keep waiting times ticking without asking: the clinic's open intervals
    from a day ago to a week ahead (ms since the epoch), its first-response target, and the server's time
    (a browser's clock may be minutes off)."""
    hours, now = clinic_hours.of(clinic_id), now or timezone.now()
    intervals, at, end = [], now - timedelta(days=1), now + timedelta(days=8)
    while at < end:
        change = hours.next_change(at)
        if hours.is_open(at):
            intervals.append([int(at.timestamp() * 1000), int(min(change or end, end).timestamp() * 1000)])
        if change is None:
            break
        at = change
    return {
        "intervals": intervals,
        "target_seconds": hours.first_response_target_minutes * 60,
        "now": int(now.timestamp() * 1000),  # the server's clock, which the rows' times are read on
    }


def conversation_context(
    membership: Membership, conversation: Conversation, names: dict[int, str], *, at_message: int | None = None
) -> dict:
    """The open conversation: its latest messages and actions in time order, header and patient panel.
    `at_message` (a search result): the window reaches back to it, so the page opens there."""
    viewer = membership.user
    read_up_to = selectors.read_up_to(viewer, conversation.pk) or 0
    # Enough to reach the first unread message, so the page can open there (within reason).
    unread = selectors.unread_counts_for(viewer, [conversation.pk]).get(conversation.pk, 0)
    limit = min(max(PAGE_SIZE, unread + 1), MAX_FIRST_WINDOW)
    found = selectors.message_in(conversation, at_message) if at_message else None
    if found is not None:
        since = Q(created_at__gt=found.created_at) | Q(created_at=found.created_at, id__gt=found.pk)
        newer = conversation.messages.filter(since).order_by()[:MAX_AT_MESSAGE].count()
        # The message, ten before it, and everything since; further back, the latest MAX_AT_MESSAGE (it is
        # then reached by scrolling up, as any older page).
        limit = max(limit, min(newer + 11, MAX_AT_MESSAGE))
    messages, has_older = selectors.message_window(conversation, limit=limit)
    actions = _actions_between(conversation, messages[0] if has_older and messages else None, None)
    notes = _notes_between(conversation, messages[0] if has_older and messages else None, None, viewer.pk, names)
    first_unread = None
    for message in messages:
        message.conversation = conversation  # the row already loaded, not one query per message
        message.sender_label = message_sender(message, viewer.pk, names)
        if first_unread is None and message.pk > read_up_to and message.sender_type == "patient":
            first_unread = message.pk
    with_quotes(messages, conversation, viewer.pk, names)
    with_transcripts(messages, conversation)
    items = _in_time_order(messages, actions, notes)
    return {
        "conversation": conversation,
        "contact": conversation.contact,
        "items": items,
        "actions": actions,
        "accept_types": ",".join(sorted(t for types, _ in WHATSAPP_MEDIA.values() for t in types)),
        "reply_window_ends_at": selectors.reply_window_ends_at(conversation, messages),
        "has_whatsapp_number": selectors.has_whatsapp_number(conversation.clinic_id),
        "media_limits": media_limits_text(),
        "form_client_id": uuid.uuid4(),
        "has_older": has_older,
        "first_unread": first_unread,
        "focus_message": found.pk if found is not None else None,
        "others": selectors.other_conversations_of(conversation),
        "status_labels": STATUS_LABELS,
        "ticks": TICKS,
        "reaction_choices": REACTION_CHOICES,
    }


def _actions_between(conversation: Conversation, first: Message | None, anchor: Message | None) -> list:
    """The conversation's actions from `first` (None: the beginning) to before `anchor` (None: now)."""
    actions = selectors.actions_of(conversation)
    if first is not None:
        actions = [a for a in actions if a.created_at >= first.created_at]
    if anchor is not None:
        actions = [a for a in actions if a.created_at < anchor.created_at]
    return actions


def _notes_between(
    conversation: Conversation, first: Message | None, anchor: Message | None, viewer_id: int, names: dict[int, str]
) -> list:
    """The conversation's internal notes in the same stretch of time as `_actions_between`, each with the
    name to show for its author."""
    notes = selectors.notes_between(conversation, first, anchor)
    for note in notes:
        note.author_label = author_label(note.author_id, viewer_id, names)
    return notes


def _in_time_order(messages: list, actions: list, notes: list) -> list[tuple[str, object]]:
    """The timeline's items by time; at one instant, actions and notes before the message."""
    items = [("message", m) for m in messages] + [("action", a) for a in actions] + [("note", n) for n in notes]
    return sorted(items, key=lambda item: (item[1].created_at, item[0] == "message", item[1].pk))


def _staff(membership: Membership) -> tuple[list[Membership], dict[int, str]]:
    staff = selectors.staff_of(membership.clinic)
    return staff, staff_names(staff)


def _media_limits() -> list[dict]:
    return [
        {"kind": kind, "types": sorted(types), "max_bytes": limit} for kind, (types, limit) in WHATSAPP_MEDIA.items()
    ]


@workspace
def inbox(request: HttpRequest, membership: Membership, conversation_id: int | None = None) -> HttpResponse:
    """`/inbox/` and `/inbox/<id>/`: the list, the open conversation and the patient panel.

    With the fragment header, only the conversation's panes (the scripts switch conversation in place).
    """
    clinic = membership.clinic
    # Read before anything is rendered: the page's stream resumes from here, so a change committed while
    # the page is built is replayed to it rather than missed.
    seq = latest_seq(clinic.pk)
    staff, names = _staff(membership)
    context = {
        "clinic": clinic,
        "membership": membership,
        "section": "inbox",
        "message_types": MESSAGE_TYPES,
        "labels": selectors.labels_of(clinic),
    }
    if conversation_id is not None:
        conversation = selectors.conversation_of(clinic, conversation_id)
        if conversation is None:
            other = as_id(request.GET.get("clinic"))  # a notification names the conversation's clinic
            if other and other != clinic.pk and selectors.membership_for(request.user, other) is not None:
                path = request.get_full_path()
                return redirect(f"{reverse('choose_clinic')}?{urlencode({'next': path})}")
            raise Http404("No such conversation in your clinic.")
        at_message = as_id(request.GET.get("m"))
        context |= conversation_context(membership, conversation, names, at_message=at_message)
        if request.headers.get(FRAGMENT_HEADER) != "patient":  # opened (the panel's refresh is not a reading)
            record_reading(
                actor=request.user, conversation=conversation, via="inbox", ip=request.META.get("REMOTE_ADDR")
            )
    if request.headers.get(FRAGMENT_HEADER) in ("conversation", "patient"):
        return render(request, "conversations/_panes.html", context | {"staff": staff})
    filters = ListFilters.from_query(request.GET)
    try:  # without scripts, "Mais conversas" is a link to the next page
        after = cursors.decode_activity(request.GET["cursor"]) if request.GET.get("cursor") else None
    except ValidationError:
        after = None
    rows, next_cursor = list_rows(membership, filters, names, after=after)
    return render(
        request,
        "conversations/inbox.html",
        context
        | {
            "seq": seq,
            "rows": rows,
            "next_cursor": next_cursor,
            "filters": filters,
            "tab_links": [
                {"label": label, "query": filters.query(tab=key), "current": key == filters.tab}
                for key, label in TABS.items()
            ],
            "status_links": [
                {"label": label, "query": filters.query(status=key), "current": key == filters.status}
                for key, label in STATUSES.items()
            ],
            "label_links": [
                {
                    "tag": tag,
                    "query": filters.query(label=None if tag.pk == filters.label else tag.pk),
                    "current": tag.pk == filters.label,
                }
                for tag in context["labels"]
            ],
            "staff": staff,
            "config": page_config(user_id=membership.user_id, names=names)
            | {"media": _media_limits(), "waiting": waiting_clock(clinic.pk)},
        },
    )


@workspace
def inbox_rows(request: HttpRequest, membership: Membership) -> HttpResponse:
    """Rows of the list for the filters in the query: the next page (`cursor`), or one conversation's row
    (`id`) if it matches them — 204 if it does not, so the script removes it."""
    filters = ListFilters.from_query(request.GET)
    # Read only if a row's latest message is a colleague's (its preview names them): a row asked for after a
    # patient's message never needs them.
    names = SimpleLazyObject(lambda: _staff(membership)[1])
    ids = None
    if "id" in request.GET:
        try:
            ids = [int(request.GET["id"])]
        except ValueError:
            return HttpResponse("id must be a conversation id.", status=400, content_type="text/plain")
    try:
        after = cursors.decode_activity(request.GET["cursor"]) if request.GET.get("cursor") else None
    except ValidationError:
        return HttpResponse("Not a cursor this page gave out.", status=400, content_type="text/plain")
    rows, next_cursor = list_rows(membership, filters, names, after=after, ids=ids)
    if ids is not None and not rows:
        return HttpResponse(status=204)
    context = {
        "rows": rows,
        "next_cursor": next_cursor if ids is None else None,
        "filters": filters,
        "appending": True,
        "clinic": membership.clinic,
        "message_types": MESSAGE_TYPES,
    }
    return render(request, "conversations/_rows.html", context)


@workspace
def board(request: HttpRequest, membership: Membership) -> HttpResponse:
    """`/board/`: the clinic's conversations as cards in a column per status."""
    clinic = membership.clinic
    seq = latest_seq(clinic.pk)
    staff, names = _staff(membership)
    columns = []
    for status, label in Conversation.Status.choices:
        cards = selectors.conversation_page(clinic, status=status, limit=BOARD_COLUMN_SIZE)
        columns.append({"status": status, "label": label, "cards": cards[:BOARD_COLUMN_SIZE]})
    config = page_config(user_id=membership.user_id, names=names)
    return render(
        request,
        "conversations/board.html",
        {
            "clinic": clinic,
            "seq": seq,
            "columns": columns,
            "config": config,
            "status_labels": STATUS_LABELS,
            "section": "board",
        },
    )


@workspace
def board_card(request: HttpRequest, membership: Membership, conversation_id: int) -> HttpResponse:
    """One card of the board, as it is now (the script puts it in its status's column)."""
    rows = selectors.conversation_page(membership.clinic, ids=[conversation_id], limit=1)
    if not rows:
        raise Http404("No such conversation in your clinic.")
    context = {"card": rows[0], "clinic": membership.clinic, "status_labels": STATUS_LABELS}
    return render(request, "conversations/_card.html", context)


@workspace
def timeline_part(request: HttpRequest, membership: Membership, conversation_id: int) -> HttpResponse:
    """Items of the open conversation as the timeline shows them: one message (`id`, live or changed), the
    page before one (`before`, scrolling up), or one action (`action`). 204 for an id it lacks."""
    conversation = selectors.conversation_of(membership.clinic, conversation_id)
    if conversation is None:
        raise Http404("No such conversation in your clinic.")
    _, names = _staff(membership)
    try:
        wanted = {key: int(request.GET[key]) for key in ("id", "before", "action", "note") if key in request.GET}
    except ValueError:
        return HttpResponse("id, before, action and note are ids.", status=400, content_type="text/plain")
    has_older, actions, notes = False, [], []
    if "note" in wanted:
        notes = list(selectors.notes_of(conversation).filter(pk=wanted["note"]))
        if not notes:
            return HttpResponse(status=204)
        notes[0].author_label = author_label(notes[0].author_id, membership.user_id, names)
        context = {"items": [("note", notes[0])], "clinic": membership.clinic, "conversation": conversation}
        return render(request, "conversations/_timeline_items.html", context)
    if "action" in wanted:
        action = conversation.actions.filter(pk=wanted["action"]).first()
        if action is None:
            return HttpResponse(status=204)
        context = {"items": [("action", action)], "clinic": membership.clinic, "conversation": conversation}
        return render(request, "conversations/_timeline_items.html", context)
    if "id" in wanted:
        message = selectors.message_in(conversation, wanted["id"])
        messages = [message] if message is not None else []
        if not messages:
            return HttpResponse(status=204)
    elif "before" in wanted:
        anchor = selectors.message_in(conversation, wanted["before"])
        if anchor is None:
            return HttpResponse(status=204)
        messages, has_older = selectors.message_window(conversation, before=anchor, limit=PAGE_SIZE)
        actions = _actions_between(conversation, messages[0] if has_older and messages else None, anchor)
        notes = _notes_between(
            conversation, messages[0] if has_older and messages else None, anchor, membership.user_id, names
        )
    else:
        return HttpResponse("Give id or before.", status=400, content_type="text/plain")
    for message in messages:
        message.conversation = conversation
        message.sender_label = message_sender(message, membership.user_id, names)
    with_quotes(messages, conversation, membership.user_id, names)
    with_transcripts(messages, conversation)
    context = {
        "items": _in_time_order(messages, actions, notes),
        "has_older": has_older,
        "clinic": membership.clinic,
        "conversation": conversation,
        "ticks": TICKS,
        "reaction_choices": REACTION_CHOICES,
    }
    return render(request, "conversations/_timeline_items.html", context)


@workspace
def waiting_hours(request: HttpRequest, membership: Membership) -> JsonResponse:
    """`/inbox/hours/`: the clinic's open intervals and target again (its hours changed, or a day passed)."""
    return JsonResponse(waiting_clock(membership.clinic_id))
