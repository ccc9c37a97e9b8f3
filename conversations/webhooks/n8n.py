"""`/webhooks/n8n/<clinic slug>/`: messages and timeline actions from the clinic's n8n automations."""

from datetime import timedelta

from django.db import transaction
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from conversations import clinic_hours
from conversations.actions.conversations import ACTION_TYPE, add_conversation_action
from conversations.actions.inbound import receive_inbound_message
from conversations.actions.integrations import touch_integration_token
from conversations.actions.messages import MAX_TEXT_LENGTH
from conversations.actions.notes import keep_if_staff_answer
from conversations.api.inputs import QuestionIn, StorableDictField, StrictCharField, StrictSerializer
from conversations.api.outputs import ActionOut, ErrorOut, OpenOut
from conversations.models import IntegrationToken, MessageType
from conversations.questions import checked_question
from conversations.selectors import latest_conversation_for


class PatientIn(StrictSerializer):
    """Who the patient is: the phone, or for a patient WhatsApp knows by username only, the user id."""

    phone = StrictCharField(
        max_length=32, required=False, default="", help_text="The patient's number, e.g. +55 11 98765-4321"
    )
    whatsapp_user_id = StrictCharField(
        max_length=150, required=False, default="", help_text="WhatsApp's user id (BSUID) when there is no phone"
    )

    def validate(self, attrs: dict) -> dict:
        if not (attrs["phone"].strip() or attrs["whatsapp_user_id"].strip()):
            raise serializers.ValidationError({"phone": ["Give the patient's phone or whatsapp_user_id."]})
        return attrs


class N8nMessageIn(PatientIn, QuestionIn):
    name = StrictCharField(max_length=200, required=False, default="")
    content = StrictCharField(max_length=MAX_TEXT_LENGTH, required=False, allow_blank=True, default="")
    sender_type = serializers.ChoiceField(choices=["patient", "ai"], default="patient")
    message_type = serializers.ChoiceField(choices=MessageType.values, default="text")
    external_id = StrictCharField(max_length=255, required=False, help_text="Your id for it; a repeat is stored once")
    timestamp = serializers.DateTimeField(required=False, help_text="ISO 8601; without an offset, UTC")

    def validate(self, attrs: dict) -> dict:
        attrs = super().validate(attrs)
        if attrs["message_type"] == "text" and not attrs["content"].strip():
            raise serializers.ValidationError({"content": ["A text message needs some content."]})
        if ("buttons" in attrs or "list" in attrs) and attrs["sender_type"] != "ai":
            raise serializers.ValidationError({"buttons": ["Only the assistant's messages ask with options."]})
        return attrs


class N8nActionIn(PatientIn):
    action_type = serializers.RegexField(ACTION_TYPE.pattern, max_length=64)
    action_data = StorableDictField(required=False, default=dict)


class N8nMessageOut(serializers.Serializer):
    message_id = serializers.IntegerField()
    conversation_id = serializers.IntegerField()
    created = serializers.BooleanField()


class N8nSuggestionOut(serializers.Serializer):
    """202: staff answer this conversation; the assistant's text was kept as a suggestion, not a message."""

    suggestion_id = serializers.IntegerField()
    conversation_id = serializers.IntegerField()
    answered_by = serializers.CharField(help_text='Always "staff"')
    sent = serializers.BooleanField(help_text="Always false: do not send it to the patient")


def integration_token(request: Request, slug: str) -> IntegrationToken:
    """The clinic's live token from `Authorization: Bearer …`; any mismatch is the same 401."""
    scheme, _, raw = request.headers.get("Authorization", "").partition(" ")
    token = None
    if scheme.lower() == "bearer" and raw.strip():
        token = (
            IntegrationToken.objects.select_related("clinic")
            .filter(token_hash=IntegrationToken.hash_token(raw.strip()), revoked_at__isnull=True, clinic__slug=slug)
            .first()
        )
    if token is None:
        raise exceptions.AuthenticationFailed("Send the clinic's integration token as Authorization: Bearer <token>.")
    return token


class N8nWebhookView(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]

    def get_authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="n8n"'

    @extend_schema(
        request=N8nMessageIn,
        responses={200: N8nMessageOut, 201: N8nMessageOut, 202: N8nSuggestionOut, 400: ErrorOut, 401: ErrorOut},
        tags=["webhooks"],
        description="A message (phone, content, …) or, with action_type, a timeline action (see N8nActionIn).",
    )
    def post(self, request: Request, slug: str) -> Response:
        token = integration_token(request, slug)
        if token.last_used_at is None or timezone.now() - token.last_used_at > timedelta(minutes=1):
            touch_integration_token(token=token)
        if isinstance(request.data, dict) and "action_type" in request.data:
            return self._action(token, request.data)
        data = N8nMessageIn(data=request.data)
        data.is_valid(raise_exception=True)
        with transaction.atomic():  # who answers is read and the answer stored under one lock
            question = checked_question(
                content=data.validated_data["content"],
                buttons=data.validated_data.get("buttons"),
                options=data.validated_data.get("list"),
            )
            if data.validated_data["sender_type"] == "ai" and data.validated_data["message_type"] == "text":
                kept = keep_if_staff_answer(
                    clinic=token.clinic,
                    phone=data.validated_data["phone"],
                    whatsapp_user_id=data.validated_data["whatsapp_user_id"],
                    content=data.validated_data["content"],
                    external_id=data.validated_data.get("external_id"),
                )
                if kept is not None:
                    body = {"suggestion_id": kept.pk, "conversation_id": kept.conversation_id, "answered_by": "staff"}
                    return Response(body | {"sent": False}, status=status.HTTP_202_ACCEPTED)
            result = receive_inbound_message(
                clinic=token.clinic,
                phone=data.validated_data["phone"],
                whatsapp_user_id=data.validated_data["whatsapp_user_id"],
                contact_name=data.validated_data["name"],
                content=data.validated_data["content"],
                message_type=data.validated_data["message_type"],
                sender_type=data.validated_data["sender_type"],
                external_id=data.validated_data.get("external_id"),
                happened_at=data.validated_data.get("timestamp"),
                metadata={"question": question} if question else None,
            )
        body = {"message_id": result.message.pk, "conversation_id": result.conversation.pk, "created": result.created}
        return Response(body, status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK)

    def _action(self, token: IntegrationToken, payload) -> Response:
        data = N8nActionIn(data=payload)
        data.is_valid(raise_exception=True)
        conversation = latest_conversation_for(
            token.clinic, phone=data.validated_data["phone"], whatsapp_user_id=data.validated_data["whatsapp_user_id"]
        )
        if conversation is None:
            raise exceptions.ValidationError({"phone": ["No conversation with this patient in the clinic yet."]})
        action = add_conversation_action(
            conversation=conversation,
            action_type=data.validated_data["action_type"],
            action_data=data.validated_data["action_data"],
        )
        return Response(ActionOut(action).data, status=status.HTTP_201_CREATED)


class N8nOpenView(APIView):
    """`GET /webhooks/n8n/<slug>/open/`: whether the clinic is open now and when that next changes, for the
    assistant to say when the clinic opens rather than stack its answer on the away message."""

    authentication_classes = []
    permission_classes = [AllowAny]

    def get_authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="n8n"'

    @extend_schema(responses={200: OpenOut, 401: ErrorOut}, tags=["webhooks"])
    def get(self, request: Request, slug: str) -> Response:
        token = integration_token(request, slug)
        return Response(clinic_hours.open_state(token.clinic, timezone.now()))
