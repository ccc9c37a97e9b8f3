"""The inbox list and one conversation: read, change status and assignee, timeline actions."""

from django.contrib.auth import get_user_model
from django.db.models import Q
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, status
from rest_framework.request import Request
from rest_framework.response import Response

from conversations import read_cache, selectors, wire
from conversations.actions.audit import record_reading
from conversations.actions.conversations import UNCHANGED, add_conversation_action, update_conversation
from conversations.actions.labels import create_label
from conversations.actions.notes import add_note
from conversations.api import cursors
from conversations.api.inputs import (
    ActionIn,
    ConversationListQuery,
    ConversationPatchIn,
    LabelIn,
    NoteIn,
    NotePageQuery,
)
from conversations.api.outputs import (
    ActionOut,
    ConversationDetailOut,
    ConversationOut,
    ConversationPageOut,
    ErrorOut,
    LabelOut,
    NoteOut,
    NotePageOut,
)
from conversations.api.views.base import ClinicAPIView, client_ip
from conversations.models import Conversation

DETAIL_MESSAGES = 50


class ConversationListView(ClinicAPIView):
    @extend_schema(
        operation_id="conversations_list",
        parameters=[ConversationListQuery],
        responses={200: ConversationPageOut, 400: ErrorOut},
        tags=["conversations"],
    )
    def get(self, request: Request) -> Response:
        """The clinic's conversations, newest activity first, with the caller's unread counts."""
        query = ConversationListQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        assignee = params.get("assignee")
        filters = {
            "status": params.get("status"),
            "unassigned": assignee == "none",
            "assignee_id": request.user.pk
            if assignee == "me"
            else (int(assignee) if assignee not in (None, "none") else None),
            "q": params.get("q"),
            "label_id": params.get("label"),
            "snoozed": params.get("snoozed"),
            "after": cursors.decode_activity(params["cursor"]) if params.get("cursor") else None,
            "limit": params["limit"],
        }
        page = read_cache.cached(
            "conversation_list", self.clinic.pk, tuple(sorted(filters.items())), lambda: self._page(filters)
        )
        ids = [row["id"] for row in page["results"]]
        unread = read_cache.cached(
            "unread_counts",
            self.clinic.pk,
            (request.user.pk, ids),
            lambda: selectors.unread_counts_for(request.user, ids),
            reader_id=request.user.pk,
        )
        results = [{**row, "unread_count": unread.get(row["id"], 0)} for row in page["results"]]
        return Response({"results": results, "next_cursor": page["next_cursor"]})

    def _page(self, filters: dict) -> dict:
        rows = selectors.conversation_page(self.clinic, **filters)
        limit = filters["limit"]
        last = rows[limit - 1] if len(rows) > limit else None
        return {
            "results": [wire.conversation_row(row) for row in rows[:limit]],
            "next_cursor": cursors.encode(last.activity_at, last.pk) if last else None,
        }


class ConversationDetailView(ClinicAPIView):
    @extend_schema(responses={200: ConversationDetailOut, 404: ErrorOut}, tags=["conversations"])
    def get(self, request: Request, conversation_id: int) -> Response:
        """The conversation, its latest 50 messages (oldest first) with attachments, and its actions."""
        key = ("conversation_detail", self.clinic.pk, (conversation_id,))
        shared = read_cache.peek(*key, conversation_id=conversation_id)  # a hit: it is this clinic's
        if shared is None:
            conversation = self.get_conversation(conversation_id)
            shared = read_cache.cached(*key, lambda: self._shared(conversation), conversation_id=conversation_id)
        opened = Conversation(pk=conversation_id, clinic_id=self.clinic.pk)  # its clinic's: checked above
        record_reading(actor=request.user, conversation=opened, via="api", ip=client_ip(request))
        return Response({**shared, "read_up_to": selectors.read_up_to(request.user, conversation_id)})

    def _shared(self, conversation) -> dict:
        messages, has_older = selectors.message_window(conversation, limit=DETAIL_MESSAGES)
        notes = selectors.notes_between(conversation, messages[0] if has_older else None, None)
        return {
            "conversation": wire.conversation(conversation),
            "answered_by": conversation.answered_by,
            "reply_window_ends_at": wire.iso(selectors.reply_window_ends_at(conversation, messages)),
            "messages": [wire.message(message) for message in messages],
            "has_older": has_older,
            "actions": [wire.action(action) for action in selectors.actions_of(conversation)],
            "notes": [wire.note(note) for note in notes],
        }

    @extend_schema(
        request=ConversationPatchIn,
        responses={200: ConversationOut, 400: ErrorOut, 404: ErrorOut},
        tags=["conversations"],
    )
    def patch(self, request: Request, conversation_id: int) -> Response:
        """Change the status (open, pending, resolved), the assignee (a member's user id, or null), who answers
        the patient (`answered_by`: "staff" pauses the assistant, "assistant" gives it back), or several."""
        conversation = self.get_conversation(conversation_id)
        data = ConversationPatchIn(data=request.data)
        data.is_valid(raise_exception=True)
        assignee = UNCHANGED
        if "assignee" in data.validated_data:
            assignee_id = data.validated_data["assignee"]
            assignee = None if assignee_id is None else get_user_model().objects.filter(pk=assignee_id).first()
            if assignee_id is not None and assignee is None:
                raise exceptions.ValidationError({"assignee": ["The assignee must be active staff of this clinic."]})
        conversation, _ = update_conversation(
            conversation=conversation,
            actor=request.user,
            status=data.validated_data.get("status", UNCHANGED),
            assignee=assignee,
            answered_by=data.validated_data.get("answered_by", UNCHANGED),
            labels=data.validated_data.get("labels", UNCHANGED),
            snoozed_until=data.validated_data.get("snoozed_until", UNCHANGED),
            ip=client_ip(request),
        )
        return Response(wire.conversation(conversation))


class ConversationActionsView(ClinicAPIView):
    @extend_schema(responses={200: ActionOut(many=True), 404: ErrorOut}, tags=["conversations"])
    def get(self, request: Request, conversation_id: int) -> Response:
        """The conversation's timeline actions (appointments booked, changed), oldest first."""
        conversation = self.get_conversation(conversation_id)
        return Response([wire.action(action) for action in selectors.actions_of(conversation)])

    @extend_schema(request=ActionIn, responses={201: ActionOut, 400: ErrorOut, 404: ErrorOut}, tags=["conversations"])
    def post(self, request: Request, conversation_id: int) -> Response:
        """Record an action in the conversation's timeline."""
        conversation = self.get_conversation(conversation_id)
        data = ActionIn(data=request.data)
        data.is_valid(raise_exception=True)
        action = add_conversation_action(
            conversation=conversation,
            action_type=data.validated_data["action_type"],
            action_data=data.validated_data["action_data"],
            actor=request.user,
            ip=client_ip(request),
        )
        return Response(wire.action(action), status=status.HTTP_201_CREATED)


class NotesView(ClinicAPIView):
    @extend_schema(
        parameters=[NotePageQuery], responses={200: NotePageOut, 400: ErrorOut, 404: ErrorOut}, tags=["notes"]
    )
    def get(self, request: Request, conversation_id: int) -> Response:
        """The conversation's internal notes, oldest first: the latest, or those before a note (`before`)."""
        conversation = self.get_conversation(conversation_id)
        query = NotePageQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        notes = selectors.notes_of(conversation).order_by("-created_at", "-id")
        if "before" in query.validated_data:
            anchor = notes.filter(pk=query.validated_data["before"]).first()
            if anchor is None:
                raise exceptions.ValidationError({"before": ["No such note in this conversation."]}, code="not_found")
            notes = notes.filter(
                Q(created_at__lt=anchor.created_at) | Q(created_at=anchor.created_at, id__lt=anchor.pk)
            )
        limit = query.validated_data["limit"]
        page = list(notes[: limit + 1])
        record_reading(actor=request.user, conversation=conversation, via="api", ip=client_ip(request))
        return Response({"results": [wire.note(note) for note in page[:limit][::-1]], "has_more": len(page) > limit})

    @extend_schema(request=NoteIn, responses={201: NoteOut, 400: ErrorOut, 404: ErrorOut}, tags=["notes"])
    def post(self, request: Request, conversation_id: int) -> Response:
        """Write an internal note: shown to the clinic's staff, never sent to the patient. `@name` mentions a
        colleague (their user name, or their first name when no one else has it), who is told at once."""
        conversation = self.get_conversation(conversation_id)
        data = NoteIn(data=request.data)
        data.is_valid(raise_exception=True)
        note = add_note(
            conversation=conversation,
            author=request.user,
            content=data.validated_data["content"],
            ip=client_ip(request),
        )
        return Response(wire.note(note), status=status.HTTP_201_CREATED)


class LabelsView(ClinicAPIView):
    @extend_schema(responses={200: LabelOut(many=True)}, tags=["conversations"])
    def get(self, request: Request) -> Response:
        """The clinic's labels, by name."""
        return Response([wire.label(tag) for tag in selectors.labels_of(self.clinic)])

    @extend_schema(request=LabelIn, responses={201: LabelOut, 400: ErrorOut}, tags=["conversations"])
    def post(self, request: Request) -> Response:
        """Make a label for the clinic's conversations (a name, once per clinic, and a #rrggbb colour)."""
        data = LabelIn(data=request.data)
        data.is_valid(raise_exception=True)
        tag = create_label(clinic=self.clinic, actor=request.user, ip=client_ip(request), **data.validated_data)
        return Response(wire.label(tag), status=status.HTTP_201_CREATED)
