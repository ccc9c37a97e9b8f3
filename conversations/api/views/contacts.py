"""The clinic's contacts (patients) and the caller's clinics."""

from drf_spectacular.utils import extend_schema
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.response import Response

from conversations import selectors, wire
from conversations.api import cursors
from conversations.api.inputs import ContactListQuery
from conversations.api.outputs import ClinicOut, ContactOut, ContactPageOut, ErrorOut
from conversations.api.views.base import ClinicAPIView


class ContactListView(ClinicAPIView):
    @extend_schema(
        operation_id="contacts_list",
        parameters=[ContactListQuery],
        responses={200: ContactPageOut, 400: ErrorOut},
        tags=["contacts"],
    )
    def get(self, request: Request) -> Response:
        """The clinic's patients, newest first, optionally matching part of a name or phone."""
        query = ContactListQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        after_id = cursors.decode_id(params["cursor"]) if params.get("cursor") else None
        rows = selectors.contact_page(self.clinic, q=params.get("q"), after_id=after_id, limit=params["limit"])
        limit = params["limit"]
        next_cursor = cursors.encode(rows[limit - 1].pk) if len(rows) > limit else None
        return Response({"results": [wire.contact(row) for row in rows[:limit]], "next_cursor": next_cursor})


class ContactDetailView(ClinicAPIView):
    @extend_schema(responses={200: ContactOut, 404: ErrorOut}, tags=["contacts"])
    def get(self, request: Request, contact_id: int) -> Response:
        contact = selectors.contact_of(self.clinic, contact_id)
        if contact is None:
            raise exceptions.NotFound("No such contact in your clinic.", code="not_found")
        return Response(wire.contact(contact))


class ClinicListView(ClinicAPIView):
    @extend_schema(responses={200: ClinicOut(many=True)}, tags=["clinics"])
    def get(self, request: Request) -> Response:
        """The clinics the caller works for, with its role in each; `active` is the one this call acts in."""
        rows = [
            {"clinic": m.clinic, "role": m.role, "active": m.clinic_id == self.clinic.pk}
            for m in selectors.memberships_of(request.user)
        ]
        return Response(ClinicOut(rows, many=True).data)
