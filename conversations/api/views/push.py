"""This device's push notifications: whether the server sends them (and the key a browser subscribes with),
and the member's subscription of this browser with what it wants to hear of."""

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from conversations import push
from conversations.actions.push import PREFERENCES, subscribe_device, unsubscribe_device
from conversations.api.inputs import StrictCharField, StrictSerializer
from conversations.api.outputs import ErrorOut
from conversations.api.views.base import ClinicAPIView, client_ip
from conversations.logins import api_login_key
from conversations.models import PushSubscription

PushOut = inline_serializer(
    "PushSettings",
    {
        "enabled": serializers.BooleanField(help_text="Whether this server sends push notifications"),
        "public_key": serializers.CharField(allow_null=True, help_text="VAPID: the applicationServerKey"),
    },
)
DeviceOut = inline_serializer(
    "PushDevice",
    {"endpoint": serializers.CharField(), **{name: serializers.BooleanField() for name in PREFERENCES}},
)


class KeysIn(StrictSerializer):
    p256dh = StrictCharField(max_length=200)
    auth = StrictCharField(max_length=100)


class DeviceIn(StrictSerializer):
    """A browser's PushSubscription (its toJSON(): endpoint and keys) and what it wants to hear of."""

    endpoint = StrictCharField(max_length=1000)
    keys = KeysIn()
    expirationTime = serializers.IntegerField(required=False, allow_null=True)  # noqa: N815 (the browser's name)
    assigned = serializers.BooleanField(required=False)
    unassigned = serializers.BooleanField(required=False)
    mentions = serializers.BooleanField(required=False)
    late = serializers.BooleanField(required=False)


class EndpointIn(StrictSerializer):
    endpoint = StrictCharField(max_length=1000)


def device(subscription: PushSubscription) -> dict:
    return {"endpoint": subscription.endpoint, **{name: getattr(subscription, name) for name in PREFERENCES}}


class PushView(ClinicAPIView):
    @extend_schema(responses={200: PushOut}, tags=["push"])
    def get(self, request: Request) -> Response:
        """Whether this server sends push notifications, and its VAPID public key to subscribe with."""
        return Response({"enabled": push.configured(), "public_key": settings.WEB_PUSH_PUBLIC_KEY or None})


class PushDeviceView(ClinicAPIView):
    @extend_schema(
        parameters=[OpenApiParameter("endpoint", str, required=True, description="The browser's push endpoint")],
        responses={200: DeviceOut, 400: ErrorOut, 404: ErrorOut},
        tags=["push"],
    )
    def get(self, request: Request) -> Response:
        """This browser's subscription (`?endpoint=`) if it is the caller's, in the clinic it acts in."""
        query = EndpointIn(data={"endpoint": request.query_params.get("endpoint", "")})
        query.is_valid(raise_exception=True)  # NUL, lone surrogates, over 1000 characters: a 400, never a query
        found = PushSubscription.objects.filter(
            endpoint=query.validated_data["endpoint"], user=request.user, clinic=self.clinic
        ).first()
        if found is None:
            raise exceptions.NotFound("This browser has no notifications of yours here.", code="not_found")
        return Response(device(found))

    @extend_schema(request=DeviceIn, responses={200: DeviceOut, 400: ErrorOut}, tags=["push"])
    def put(self, request: Request) -> Response:
        """Subscribe this browser (or change what it hears of): new patient messages in conversations
        assigned to the caller (`assigned`), in those with no one responsible (`unassigned`), notes that
        mention them (`mentions`), conversations past the first-response target (`late`). Logging out of
        this login removes it."""
        data = DeviceIn(data=request.data)
        data.is_valid(raise_exception=True)
        found = data.validated_data
        token = getattr(request.auth, "token", None)
        login = api_login_key(token["sid"]) if token is not None else request._request.session.session_key or ""
        subscription = subscribe_device(
            user=request.user,
            clinic=self.clinic,
            endpoint=found["endpoint"],
            p256dh=found["keys"]["p256dh"],
            auth=found["keys"]["auth"],
            preferences={name: found[name] for name in PREFERENCES if name in found},
            session_key=login,
            ip=client_ip(request),
        )
        return Response(device(subscription))

    @extend_schema(request=EndpointIn, responses={204: None, 400: ErrorOut}, tags=["push"])
    def delete(self, request: Request) -> Response:
        """Stop the notifications of this browser (the caller's own)."""
        data = EndpointIn(data=request.data)
        data.is_valid(raise_exception=True)
        unsubscribe_device(user=request.user, endpoint=data.validated_data["endpoint"], ip=client_ip(request))
        return Response(status=status.HTTP_204_NO_CONTENT)
