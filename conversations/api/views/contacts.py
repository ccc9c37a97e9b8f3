"""The clinic's contacts (patients), their export and erasure (LGPD), and the caller's clinics."""

from django.http import FileResponse, HttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import exceptions, serializers
from rest_framework.request import Request
from rest_framework.response import Response

from conversations import selectors, wire
from conversations.actions.patients import correct_patient_record, merge_patients, merge_preview
from conversations.actions.privacy import erase_contact, export_contact
from conversations.api import cursors
from conversations.api.auth import IsClinicAdmin
from conversations.api.inputs import ContactListQuery, EraseIn, MergeIn, MergePreviewQuery, PatientRecordIn
from conversations.api.outputs import ClinicOut, ContactOut, ContactPageOut, ErrorOut
from conversations.api.views.base import ClinicAPIView, client_ip


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
    def get_contact(self, contact_id: int):
        contact = selectors.contact_of(self.clinic, contact_id)
        if contact is None:
            raise exceptions.NotFound("No such contact in your clinic.", code="not_found")
        return contact

    @extend_schema(responses={200: ContactOut, 404: ErrorOut}, tags=["contacts"])
    def get(self, request: Request, contact_id: int) -> Response:
        return Response(wire.contact(self.get_contact(contact_id)))

    @extend_schema(
        request=PatientRecordIn, responses={200: ContactOut, 400: ErrorOut, 404: ErrorOut}, tags=["contacts"]
    )
    def patch(self, request: Request, contact_id: int) -> Response:
        """Correct the patient's record: the clinic's name for them (WhatsApp's profile name stays apart),
        e-mail and observations. Any staff member; every screen showing them is told; audited by field."""
        contact = self.get_contact(contact_id)
        data = PatientRecordIn(data=request.data)
        data.is_valid(raise_exception=True)
        contact, _ = correct_patient_record(
            contact=contact, actor=request.user, changes=data.validated_data, ip=client_ip(request)
        )
        return Response(wire.contact(contact))


class ContactPrivacyView(ClinicAPIView):
    permission_classes = [IsClinicAdmin]

    def get_contact(self, contact_id: int):
        if getattr(self.request.auth, "membership", None) is None:  # support signed in, no clinic chosen
            raise exceptions.PermissionDenied("Choose a clinic first.", code="no_active_clinic")
        contact = selectors.contact_of(self.clinic, contact_id)
        if contact is None:
            raise exceptions.NotFound("No such contact in your clinic.", code="not_found")
        return contact


class ContactExportView(ContactPrivacyView):
    @extend_schema(
        responses={
            (200, "application/zip"): OpenApiResponse(description="patient.json and attachments/"),
            403: ErrorOut,
            404: ErrorOut,
        },
        tags=["contacts"],
    )
    def get(self, request: Request, contact_id: int) -> HttpResponse:
        """Everything held about the patient, as a zip (LGPD's right of access). Clinic admins; audited."""
        contact = self.get_contact(contact_id)
        archive = export_contact(contact=contact, actor=request.user, ip=client_ip(request))
        response = FileResponse(archive, as_attachment=True, filename=f"paciente-{contact.pk}.zip")
        response["Content-Type"] = "application/zip"
        response["Cache-Control"] = "no-store"
        return response


class ContactEraseView(ContactPrivacyView):
    @extend_schema(
        request=EraseIn,
        responses={
            200: inline_serializer(
                "Erased",
                {
                    "conversations": serializers.IntegerField(),
                    "messages": serializers.IntegerField(),
                    "files": serializers.IntegerField(),
                    "events": serializers.IntegerField(),
                },
            ),
            400: ErrorOut,
            403: ErrorOut,
            404: ErrorOut,
        },
        tags=["contacts"],
    )
    def post(self, request: Request, contact_id: int) -> Response:
        """Anonymise the patient and delete every text and file of theirs (LGPD's right of erasure);
        counts and clinical actions stay. Clinic admins; audited; cannot be undone."""
        contact = self.get_contact(contact_id)
        EraseIn(data=request.data).is_valid(raise_exception=True)
        return Response(erase_contact(contact=contact, actor=request.user, ip=client_ip(request)).as_dict())


MergedPatientOut = inline_serializer(
    "MergePatient",
    {
        "id": serializers.IntegerField(),
        "display_name": serializers.CharField(),
        "phone": serializers.CharField(),
        "messages": serializers.IntegerField(),
    },
)


class ContactMergeView(ContactPrivacyView):
    def other(self, contact_id: int, merge_id: int):
        other = selectors.contact_of(self.clinic, merge_id)
        if other is None or other.pk == contact_id:
            raise exceptions.ValidationError(
                {
                    "merge_id": [
                        exceptions.ErrorDetail("No other patient with this id in your clinic.", code="not_found")
                    ]
                }
            )
        return other

    @extend_schema(
        parameters=[MergePreviewQuery],
        responses={
            200: inline_serializer("MergePreview", {"kept": MergedPatientOut, "merged": MergedPatientOut}),
            400: ErrorOut,
            403: ErrorOut,
            404: ErrorOut,
        },
        tags=["contacts"],
    )
    def get(self, request: Request, contact_id: int) -> Response:
        """Who a merge would join: both patients with their message counts, for the confirmation."""
        contact = self.get_contact(contact_id)
        query = MergePreviewQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        return Response(merge_preview(contact, self.other(contact.pk, query.validated_data["merge_id"])))

    @extend_schema(
        request=MergeIn,
        responses={
            200: inline_serializer(
                "Merged",
                {
                    "kept": serializers.IntegerField(),
                    "merged": serializers.IntegerField(),
                    "conversations": serializers.IntegerField(),
                    "messages": serializers.IntegerField(),
                },
            ),
            400: ErrorOut,
            403: ErrorOut,
            404: ErrorOut,
        },
        tags=["contacts"],
    )
    def post(self, request: Request, contact_id: int) -> Response:
        """Merge another record of the same patient (`merge_id`) into this one: their conversations,
        messages, notes, labels, actions, read marks and WhatsApp ids become this patient's, in one
        transaction. Clinic admins; audited; cannot be undone."""
        contact = self.get_contact(contact_id)
        data = MergeIn(data=request.data)
        data.is_valid(raise_exception=True)
        other = self.other(contact.pk, data.validated_data["merge_id"])
        merged = merge_patients(kept=contact, merged=other, actor=request.user, ip=client_ip(request))
        return Response(merged.as_dict())


class ClinicListView(ClinicAPIView):
    @extend_schema(responses={200: ClinicOut(many=True)}, tags=["clinics"])
    def get(self, request: Request) -> Response:
        """The clinics the caller works for, with its role in each; `active` is the one this call acts in."""
        rows = [
            {"clinic": m.clinic, "role": m.role, "active": m.clinic_id == self.clinic.pk}
            for m in selectors.memberships_of(request.user)
        ]
        return Response(ClinicOut(rows, many=True).data)
