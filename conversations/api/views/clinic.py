"""The clinic's business hours, whether it is open now, and its reports (the manager's view)."""

from django.core.handlers.asgi import ASGIRequest
from django.http import StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import exceptions, serializers
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from conversations import clinic_hours, reports
from conversations.actions.hours import set_business_hours
from conversations.api.outputs import ErrorOut, OpenOut
from conversations.api.renderers import FastJSONRenderer
from conversations.api.views.base import ClinicAPIView, client_ip
from conversations.errors import InvalidInput

HOURS_FIELDS = ("timezone", "week", "closed_dates", "away_mode", "away_message", "first_response_target_minutes")

HoursOut = inline_serializer(
    "ClinicHours",
    {
        "timezone": serializers.CharField(help_text="IANA, e.g. America/Sao_Paulo"),
        "week": serializers.DictField(
            child=serializers.ListField(child=serializers.ListField(child=serializers.CharField())),
            help_text='mon … sun, each a list of ["HH:MM", "HH:MM"] intervals; "24:00" ends a day; [] is closed',
        ),
        "closed_dates": serializers.ListField(child=serializers.DateField(), help_text="Holidays: closed all day"),
        "away_mode": serializers.ChoiceField(choices=["off", "staff", "always"]),
        "away_message": serializers.CharField(),
        "first_response_target_minutes": serializers.IntegerField(),
    },
)


def require_admin(request: Request) -> None:
    membership = request.auth.membership
    if not (request.user.is_superuser or membership.role == "admin"):
        raise exceptions.PermissionDenied("Only the clinic's admins can do this.", code="not_an_admin")


class ClinicHoursView(ClinicAPIView):
    @extend_schema(responses={200: HoursOut}, tags=["clinic"])
    def get(self, request: Request) -> Response:
        """The clinic's business hours, closed dates, away message and first-response target (any staff)."""
        return Response(clinic_hours.document(self.clinic))

    @extend_schema(request=HoursOut, responses={200: HoursOut, 400: ErrorOut, 403: ErrorOut}, tags=["clinic"])
    def put(self, request: Request) -> Response:
        """Set them (clinic admins): the whole document, or some of its fields (the others stay). An
        overlapping or malformed interval is a 400 naming the day (`week.mon`); every change is audited."""
        require_admin(request)
        if not isinstance(request.data, dict):
            raise InvalidInput("Send the hours as a JSON object.", field="body")
        unknown = sorted(set(request.data) - set(HOURS_FIELDS))
        if unknown:
            raise InvalidInput(f"Unknown field; the fields are {', '.join(HOURS_FIELDS)}.", field=unknown[0])
        wanted = clinic_hours.document(self.clinic) | request.data
        for field in ("timezone", "away_mode", "away_message"):
            if not isinstance(wanted[field], str):
                raise InvalidInput("A text is expected here.", field=field)
        set_business_hours(
            clinic=self.clinic,
            actor=request.user,
            timezone_name=wanted["timezone"],
            week=wanted["week"],
            closed_dates=wanted["closed_dates"],
            away_mode=wanted["away_mode"],
            away_message=wanted["away_message"],
            first_response_target_minutes=wanted["first_response_target_minutes"],
            ip=client_ip(request),
        )
        self.clinic.refresh_from_db(fields=["timezone"])
        return Response(clinic_hours.document(self.clinic))


class ClinicOpenView(ClinicAPIView):
    @extend_schema(responses={200: OpenOut}, tags=["clinic"])
    def get(self, request: Request) -> Response:
        """Whether the clinic is open now, and when that next changes (null: never)."""
        return Response(clinic_hours.open_state(self.clinic, timezone.now()))


class CSVRenderer(BaseRenderer):
    """`?format=csv` of the reports (the view streams the file itself; errors are answered as JSON)."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        return data if isinstance(data, bytes) else str(data).encode()


class ReportsView(ClinicAPIView):
    renderer_classes = [FastJSONRenderer, CSVRenderer]

    def perform_content_negotiation(self, request: Request, force: bool = False):
        if request.query_params.get("format") not in (None, "json"):
            return FastJSONRenderer(), "application/json"  # a refusal is JSON; the CSV is streamed by get()
        return super().perform_content_negotiation(request, force)

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "from", str, description="First day, YYYY-MM-DD (clinic's time zone); default 29 days before `to`"
            ),
            OpenApiParameter("to", str, description="Last day, YYYY-MM-DD, included; default today"),
            OpenApiParameter("format", str, description="csv: one row per attendance, no message text"),
        ],
        responses={
            200: inline_serializer("Report", {"first_response": serializers.DictField()}),
            400: ErrorOut,
            403: ErrorOut,
        },
        tags=["clinic"],
    )
    def get(self, request: Request):
        """The clinic's report for a range of its days (clinic admins): conversations opened and resolved,
        messages in and out, first response and resolution times (median, p90; wall time and business
        hours), the assistant alone vs. staff, each staff member, and patients' messages by weekday × hour."""
        require_admin(request)
        if request.query_params.get("format") not in (None, "json", "csv"):
            raise InvalidInput("format is csv, or json (the default).", field="format")
        today = timezone.now().astimezone(self.clinic.tzinfo).date()
        period = reports.period_of(
            self.clinic, request.query_params.get("from"), request.query_params.get("to"), today=today
        )
        if request.query_params.get("format") == "csv":
            # Under the ASGI server an asynchronous iterator streams page by page (a synchronous one would be
            # read whole first); elsewhere (WSGI, the tests' client) a synchronous one.
            pages = reports.acsv_pages(period) if isinstance(request._request, ASGIRequest) else None
            response = StreamingHttpResponse(pages or reports.csv_pages(period), content_type="text/csv; charset=utf-8")
            name = f"relatorio-{self.clinic.slug}-{period.first}-{period.last}.csv"
            response["Content-Disposition"] = f'attachment; filename="{name}"'
            return response
        return Response(reports.report(period))
