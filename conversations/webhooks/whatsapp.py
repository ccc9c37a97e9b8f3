"""`/webhooks/whatsapp/`: Meta's verification handshake, and its signed notifications of messages and statuses."""

import hashlib
import hmac
import json
import logging

from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from conversations.actions.contacts import usable_identifier
from conversations.actions.deliveries import record_provider_status
from conversations.actions.inbound import (
    receive_inbound_message,
    record_business_app_echo,
    record_identity_change,
)
from conversations.errors import ActionError
from conversations.models import Clinic, WhatsAppChannel
from conversations.storable import storable
from conversations.webhooks.whatsapp_payload import (
    InboundMessage,
    Notification,
    Patient,
    PayloadError,
    parse_notification,
)

logger = logging.getLogger(__name__)


def signature_of(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verified_secret(body: bytes, header: str) -> str | None:
    """The app secret that signed `body`, compared in constant time against every channel's secret."""
    if not header.startswith("sha256="):
        return None
    found = None
    for secret in WhatsAppChannel.objects.values_list("app_secret", flat=True).distinct():
        if hmac.compare_digest(signature_of(body, secret), header):
            found = secret
    return found


def verify_subscription(request: HttpRequest) -> HttpResponse:
    mode, token = request.GET.get("hub.mode"), request.GET.get("hub.verify_token") or ""
    tokens = WhatsAppChannel.objects.values_list("verify_token", flat=True)
    if mode == "subscribe" and any(hmac.compare_digest(token, t) for t in tokens):
        return HttpResponse(request.GET.get("hub.challenge", ""), content_type="text/plain")
    logger.warning("whatsapp webhook verification refused (mode=%r)", mode)
    return HttpResponse("Verification token does not match any channel.", status=403, content_type="text/plain")


def store(notification: Notification, secret: str) -> dict[str, int]:
    """Apply every record whose number belongs to a channel of the app that signed; each commits on its own."""
    channels = {
        c.phone_number_id: c
        for c in WhatsAppChannel.objects.select_related("clinic").filter(
            phone_number_id__in=notification.phone_number_ids, app_secret=secret
        )
    }
    counts = {"messages": 0, "statuses": 0, "ignored": 0}
    for message in notification.messages:
        channel = channels.get(message.phone_number_id)
        if channel is None:
            logger.warning("whatsapp message for unknown number %s ignored", message.phone_number_id)
            counts["ignored"] += 1
            continue
        try:
            store_message(channel.clinic, message)
        except ActionError as refused:  # e.g. a record naming no patient at all: Meta's retry would not help
            logger.warning("whatsapp message %s refused: %s", message.external_id, refused.detail)
            counts["ignored"] += 1
            continue
        counts["messages"] += 1
    for status in notification.statuses:
        channel = channels.get(status.phone_number_id)
        if channel is None:
            logger.warning("whatsapp status for unknown number %s ignored", status.phone_number_id)
            counts["ignored"] += 1
            continue
        record_provider_status(
            clinic_id=channel.clinic_id,
            external_id=status.external_id,
            status=status.status,
            happened_at=status.happened_at,
            error=status.error,
        )
        counts["statuses"] += 1
    return counts


def _identifiers(patient: Patient) -> dict[str, str]:
    """The sender's identifiers; a malformed one is dropped (logged) while another still names the
    patient, so the message is kept rather than refused for it."""
    given = {
        "phone": patient.phone,
        "whatsapp_user_id": patient.user_id,
        "whatsapp_parent_user_id": patient.parent_user_id,
    }
    usable = {key: usable_identifier(key, value) if value else "" for key, value in given.items()}
    if not any(usable.values()):
        return given  # nothing usable: the action refuses it and says why
    for key, value in given.items():
        if value and not usable[key]:
            logger.warning("whatsapp sent a malformed %s (%r); the patient is found by the others", key, value[:40])
    return usable


def store_message(clinic: Clinic, message: InboundMessage) -> None:
    """One record: a patient's message, the clinic's echo from the Business app, or a number/id change."""
    patient = message.patient
    ids = {**_identifiers(patient), "whatsapp_username": patient.username}
    common = {
        "clinic": clinic,
        "external_id": message.external_id,
        "happened_at": message.happened_at,
        "metadata": message.metadata,
    }
    change = message.identity_change
    if change is not None:
        record_identity_change(
            **common,
            kind=change.kind,
            text=message.content,
            old_phone=ids["phone"],
            old_user_ids=(change.previous_user_id, patient.user_id),
            new_phone=change.new_phone,
            new_user_id=change.new_user_id,
            new_parent_user_id=change.new_parent_user_id,
        )
    elif message.echo:
        record_business_app_echo(**common, **ids, message_type=message.message_type, content=message.content)
    else:
        receive_inbound_message(
            **common,
            **ids,
            profile_name=patient.name,
            message_type=message.message_type,
            content=message.content,
        )


@csrf_exempt
@require_http_methods(["GET", "POST"])
def whatsapp_webhook(request: HttpRequest) -> HttpResponse:
    """200 only once everything that arrived is committed; 5xx when it cannot be, so Meta retries."""
    try:
        if request.method == "GET":
            return verify_subscription(request)
        try:
            body = request.body
        except RequestDataTooBig:
            return JsonResponse({"code": "too_large", "detail": "The notification is too large."}, status=413)
        secret = verified_secret(body, request.headers.get("X-Hub-Signature-256", ""))
        if secret is None:
            logger.warning("whatsapp webhook with a bad or missing signature refused")
            return JsonResponse({"code": "bad_signature", "detail": "X-Hub-Signature-256 does not match."}, status=403)
        try:
            notification = parse_notification(storable(json.loads(body)))
        except (ValueError, PayloadError) as error:
            logger.warning("whatsapp webhook with an unreadable body: %s", error)
            return JsonResponse({"code": "invalid_payload", "detail": str(error)[:200], "field": "body"}, status=400)
        for problem in notification.skipped:
            logger.warning("whatsapp webhook: skipped %s", problem)
        counts = store(notification, secret)
    except DatabaseError:
        logger.exception("whatsapp webhook could not be stored; Meta will retry")
        return JsonResponse({"code": "unavailable", "detail": "Could not store it now; retry."}, status=503)
    return JsonResponse({"received": counts})
