"""A conversation's messages: pages of the timeline, sending, and read marks."""

from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from conversations import search, selectors, wire
from conversations.actions.audit import record_reading, record_search
from conversations.actions.messages import (
    mark_read,
    mark_unread,
    resend_failed_message,
    send_outbound_message,
    send_template_message,
)
from conversations.actions.reactions import react_to_message
from conversations.api import cursors
from conversations.api.inputs import MessagePageQuery, ReactionIn, ReadIn, ResendIn, SearchQuery, SendMessageIn
from conversations.api.outputs import ErrorOut, MessageOut, MessagePageOut, SearchPageOut, TemplateListOut
from conversations.api.parsers import JSONParser
from conversations.api.views.base import ClinicAPIView, client_ip
from conversations.message_templates import template_named, templates_for


class MessagesView(ClinicAPIView):
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    @extend_schema(
        parameters=[MessagePageQuery], responses={200: MessagePageOut, 400: ErrorOut, 404: ErrorOut}, tags=["messages"]
    )
    def get(self, request: Request, conversation_id: int) -> Response:
        """Older messages (`before`) or what came after (`after`) a message, oldest first."""
        conversation = self.get_conversation(conversation_id)
        query = MessagePageQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        anchors = {}
        for side in ("before", "after"):
            if side in query.validated_data:
                anchors[side] = selectors.message_in(conversation, query.validated_data[side])
                if anchors[side] is None:
                    raise exceptions.ValidationError(
                        {side: ["No such message in this conversation."]}, code="not_found"
                    )
        messages, has_more = selectors.message_window(conversation, limit=query.validated_data["limit"], **anchors)
        record_reading(actor=request.user, conversation=conversation, via="api", ip=client_ip(request))
        return Response({"results": [wire.message(message) for message in messages], "has_more": has_more})

    @extend_schema(
        request={"application/json": SendMessageIn, "multipart/form-data": SendMessageIn},
        responses={200: MessageOut, 201: MessageOut, 400: ErrorOut, 404: ErrorOut, 409: ErrorOut, 503: ErrorOut},
        tags=["messages"],
    )
    def post(self, request: Request, conversation_id: int) -> Response:
        """Send a message (JSON, or multipart with one file): stored as pending, then delivered.

        The same `client_id` again returns the first message with 200 instead of storing another.
        `reply_to` quotes a message of the conversation that WhatsApp knows (it has a WhatsApp id). Free text
        and files need WhatsApp's 24-hour window open (`reply_window_ends_at`): after it, a `409`
        `outside_reply_window`, and `{"template": name, "variables": {...}}` sends an approved template.
        """
        conversation = self.get_conversation(conversation_id)
        data = SendMessageIn(data=request.data)
        data.is_valid(raise_exception=True)
        if "template" in data.validated_data:
            template = template_named(
                conversation.clinic_id, conversation.whatsapp_number_id, data.validated_data["template"]
            )
            result = send_template_message(
                conversation=conversation,
                sender=request.user,
                template=template,
                variables=data.validated_data["variables"],
                header=data.validated_data.get("header"),
                button_parameters=data.validated_data.get("button_parameters"),
                header_file=data.validated_data.get("file"),
                client_id=data.validated_data.get("client_id"),
                ip=client_ip(request),
            )
            code = status.HTTP_201_CREATED if result.created else status.HTTP_200_OK
            return Response(wire.message(result.message), status=code)
        result = send_outbound_message(
            conversation=conversation,
            sender=request.user,
            content=data.validated_data.get("content", ""),
            client_id=data.validated_data.get("client_id"),
            attachment=data.validated_data.get("file"),
            reply_to=data.validated_data.get("reply_to"),
            buttons=data.validated_data.get("buttons"),
            options=data.validated_data.get("list"),
            voice=data.validated_data.get("voice", False),
            ip=client_ip(request),
        )
        code = status.HTTP_201_CREATED if result.created else status.HTTP_200_OK
        return Response(wire.message(result.message), status=code)


class ResendView(ClinicAPIView):
    @extend_schema(
        request=ResendIn, responses={200: MessageOut, 201: MessageOut, 400: ErrorOut, 404: ErrorOut}, tags=["messages"]
    )
    def post(self, request: Request, conversation_id: int, message_id: int) -> Response:
        """Send a failed message again, as a new pending message with the same text and files."""
        conversation = self.get_conversation(conversation_id)
        data = ResendIn(data=request.data)
        data.is_valid(raise_exception=True)
        message = self.get_message(conversation, message_id)
        result = resend_failed_message(
            message=message, sender=request.user, client_id=data.validated_data.get("client_id"), ip=client_ip(request)
        )
        code = status.HTTP_201_CREATED if result.created else status.HTTP_200_OK
        return Response(wire.message(result.message), status=code)


class ReactionView(ClinicAPIView):
    @extend_schema(
        request=ReactionIn, responses={200: MessageOut, 400: ErrorOut, 404: ErrorOut, 409: ErrorOut}, tags=["messages"]
    )
    def post(self, request: Request, conversation_id: int, message_id: int) -> Response:
        """React to a patient's message with one emoji (`""` takes it back): shown on the message on every
        screen, and sent to WhatsApp by the worker as a `reaction` message."""
        conversation = self.get_conversation(conversation_id)
        data = ReactionIn(data=request.data)
        data.is_valid(raise_exception=True)
        message = self.get_message(conversation, message_id)
        message = react_to_message(
            conversation=conversation,
            message=message,
            actor=request.user,
            emoji=data.validated_data["emoji"],
            ip=client_ip(request),
        )
        return Response(wire.message(message))


class ReadView(ClinicAPIView):
    @extend_schema(request=ReadIn, responses={204: None, 400: ErrorOut, 404: ErrorOut}, tags=["messages"])
    def post(self, request: Request, conversation_id: int) -> Response:
        """Mark the conversation read up to a message, for the caller; the marker never moves back."""
        conversation = self.get_conversation(conversation_id)
        data = ReadIn(data=request.data)
        data.is_valid(raise_exception=True)
        message = selectors.message_in(conversation, data.validated_data["message_id"])
        if message is None:
            raise exceptions.ValidationError(
                {"message_id": ["No such message in this conversation."]}, code="not_found"
            )
        mark_read(user=request.user, conversation=conversation, message=message)
        return Response(status=status.HTTP_204_NO_CONTENT)


class UnreadView(ClinicAPIView):
    @extend_schema(request=None, responses={204: None, 400: ErrorOut, 404: ErrorOut}, tags=["messages"])
    def post(self, request: Request, conversation_id: int) -> Response:
        """Mark the conversation unread again for the caller alone: the patient's latest message counts as
        unread for them (the list's badge) until they read it. 400 when the patient never wrote."""
        conversation = self.get_conversation(conversation_id)
        mark_unread(user=request.user, conversation=conversation)
        return Response(status=status.HTTP_204_NO_CONTENT)


class TemplatesView(ClinicAPIView):
    @extend_schema(responses={200: TemplateListOut, 503: ErrorOut}, tags=["messages"])
    def get(self, request: Request) -> Response:
        """The clinic's approved WhatsApp templates (from the Graph API where a number is connected, kept a few
        minutes; the simulator's otherwise): what can be sent once a patient's 24-hour window has closed."""
        source, templates = templates_for(self.clinic.pk)
        return Response({"source": source, "results": [t.as_dict() for t in templates]})


class SearchView(ClinicAPIView):
    @extend_schema(parameters=[SearchQuery], responses={200: SearchPageOut, 400: ErrorOut}, tags=["messages"])
    def get(self, request: Request) -> Response:
        """The clinic's messages whose text matches `q` (Portuguese stemming, accents folded: "exame" finds
        "exâmes"), best first; `cursor` for the next page. Searching is audited (never the words sought)."""
        query = SearchQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        offset = cursors.decode_offset(params["cursor"], most=search.WINDOW) if params.get("cursor") else 0
        hits, more = search.search_messages(self.clinic, params["q"], offset=offset, limit=params["limit"])
        record_search(actor=request.user, clinic_id=self.clinic.pk, found=len(hits), ip=client_ip(request))
        results = [
            {
                "conversation_id": hit.conversation_id,
                "message_id": hit.message_id,
                "snippet": hit.snippet,
                "created_at": wire.iso(hit.created_at),
            }
            for hit in hits
        ]
        next_cursor = cursors.encode(offset + len(hits)) if more else None
        return Response({"results": results, "next_cursor": next_cursor})
