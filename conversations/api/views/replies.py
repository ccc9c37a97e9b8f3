"""The clinic's quick replies: every member reads them, its admins write them."""

from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, status
from rest_framework.request import Request
from rest_framework.response import Response

from conversations import selectors, wire
from conversations.actions.replies import change_quick_reply, create_quick_reply, delete_quick_reply
from conversations.api.inputs import QuickReplyIn
from conversations.api.outputs import ErrorOut, QuickReplyOut
from conversations.api.views.base import ClinicAPIView, client_ip
from conversations.models import QuickReply


class QuickRepliesView(ClinicAPIView):
    @extend_schema(responses={200: QuickReplyOut(many=True)}, tags=["quick replies"])
    def get(self, request: Request) -> Response:
        """The clinic's quick replies, by short code."""
        return Response([wire.quick_reply(reply) for reply in selectors.quick_replies_of(self.clinic)])

    @extend_schema(
        request=QuickReplyIn, responses={201: QuickReplyOut, 400: ErrorOut, 403: ErrorOut}, tags=["quick replies"]
    )
    def post(self, request: Request) -> Response:
        """Save an answer under a short code (clinic admins). Its text may hold {{nome}}, {{primeiro_nome}}
        and {{clinica}}, filled from the conversation when it is used."""
        data = QuickReplyIn(data=request.data)
        data.is_valid(raise_exception=True)
        reply = create_quick_reply(clinic=self.clinic, actor=request.user, ip=client_ip(request), **data.validated_data)
        return Response(wire.quick_reply(reply), status=status.HTTP_201_CREATED)


class QuickReplyView(ClinicAPIView):
    def get_reply(self, reply_id: int) -> QuickReply:
        reply = selectors.quick_replies_of(self.clinic).filter(pk=reply_id).first()
        if reply is None:
            raise exceptions.NotFound("No such quick reply in your clinic.", code="not_found")
        return reply

    @extend_schema(
        request=QuickReplyIn,
        responses={200: QuickReplyOut, 400: ErrorOut, 403: ErrorOut, 404: ErrorOut},
        tags=["quick replies"],
    )
    def patch(self, request: Request, reply_id: int) -> Response:
        """Change a quick reply's short code or text (clinic admins)."""
        reply = self.get_reply(reply_id)
        data = QuickReplyIn(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        fields = {"shortcut": reply.shortcut, "content": reply.content, "buttons": reply.buttons} | data.validated_data
        reply = change_quick_reply(reply=reply, actor=request.user, ip=client_ip(request), **fields)
        return Response(wire.quick_reply(reply))

    @extend_schema(responses={204: None, 403: ErrorOut, 404: ErrorOut}, tags=["quick replies"])
    def delete(self, request: Request, reply_id: int) -> Response:
        """Remove a quick reply (clinic admins)."""
        delete_quick_reply(reply=self.get_reply(reply_id), actor=request.user, ip=client_ip(request))
        return Response(status=status.HTTP_204_NO_CONTENT)
