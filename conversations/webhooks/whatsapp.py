"""`/webhooks/whatsapp/`: Meta's verification handshake, and its signed notifications of messages and statuses.

The ASGI route serves the POSTs outside Django's handler and middleware (whatsapp_asgi, DESIGN §10); the
Django view below serves GET, and POSTs where that route does not (the test client). A notification is
checked against the app secrets held in memory (whatsapp_channels) — one HMAC at most, whoever sent it; an
address refused too often is answered 429 before even that (strangers) — then read and stored: the usual
patient message in one statement (actions.inbound_fast), anything else through the full actions. It
answers 200 only once everything that arrived is committed, and 503 when it cannot be, so that Meta
retries. The ASGI route first tries `receive_notification_on_loop`, which does the most common
notification without leaving the event loop, and `receive_verified` on a database thread otherwise.
"""

import json
import logging
import re
from collections import defaultdict

import orjson
from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from conversations.actions.contacts import usable_identifier
from conversations.actions.inbound import (
    receive_inbound_message,
    record_business_app_echo,
    record_identity_change,
)
from conversations.actions.inbound_fast import areceive_usual_message, receive_usual_message, usual_inbound
from conversations.actions.statuses import record_provider_status
from conversations.errors import ActionError
from conversations.models import Clinic
from conversations.providers.base import message_id_of_callback
from conversations.storable import storable
from conversations.webhooks import strangers, whatsapp_channels
from conversations.webhooks.whatsapp_channels import signature_of  # noqa: F401 (what callers sign with)
from conversations.webhooks.whatsapp_payload import (
    InboundMessage,
    Notification,
    Patient,
    PayloadError,
    parse_notification,
)

logger = logging.getLogger(__name__)
# How this process stored each clinic's messages, for /api/metrics/: on the event loop, in a statement or
# three on a database thread, or through the full action.
WAYS = ("event_loop", "few_statements", "full_action")
stored_by_clinic: dict[int, dict[str, int]] = defaultdict(lambda: dict.fromkeys(WAYS, 0))


def stored_by(clinic_id: int | None = None) -> dict[str, int]:
    """How this process stored messages: one clinic's, or (None) every clinic's together."""
    counts = dict.fromkeys(WAYS, 0)
    for clinic, ways in list(stored_by_clinic.items()):
        if clinic_id is None or clinic == clinic_id:
            for way, count in ways.items():
                counts[way] += count
    return counts


# JSON escapes of what the database cannot store (a NUL, a lone surrogate): only then is the body cleaned.
UNSTORABLE = re.compile(rb"\\u(0000|[dD][89a-fA-F])")


def verify_subscription(request: HttpRequest) -> HttpResponse:
    mode, token = request.GET.get("hub.mode"), request.GET.get("hub.verify_token") or ""
    if mode == "subscribe" and whatsapp_channels.verify_token_matches(token):
        return HttpResponse(request.GET.get("hub.challenge", ""), content_type="text/plain")
    logger.warning("whatsapp webhook verification refused (mode=%r)", mode)
    return HttpResponse("Verification token does not match any channel.", status=403, content_type="text/plain")


def read_body(body: bytes):
    """The notification's JSON, with what the database cannot store cleaned out (kept, never refused)."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        try:
            payload = json.loads(body)  # also takes lone surrogates, which are then replaced
        except RecursionError:
            raise ValueError("the JSON is nested too deeply to read") from None
    return storable(payload) if UNSTORABLE.search(body) else payload


BAD_SIGNATURE = (403, {"code": "bad_signature", "detail": "X-Hub-Signature-256 does not match."})


def checked(
    body: bytes, signature: str, address: str | None, channels: whatsapp_channels.Directory
) -> tuple[str | None, tuple[int, dict] | None]:
    """The app secret that signed `body` and None, or None and the answer refusing it: 429 for an address
    refused too often lately for the app the body points to (before any HMAC), else one HMAC, and 403 for
    no or a wrong signature. Refusals are counted per address and app (strangers.refusals): one app's stale
    secret, failing from Meta's own addresses, never holds up another app's notifications."""
    secret = channels.secret_named_in(body)
    key = strangers.key(address, secret)
    wait = strangers.refusals.wait(key)
    if wait is not None:
        detail = "Too many requests with no or a wrong signature from this address; try again later."
        return None, (429, {"code": "rate_limited", "detail": detail, "retry_after": int(wait)})
    if secret is not None and whatsapp_channels.signed_with(body, signature, secret):
        return secret, None
    strangers.refusals.refused(key)
    logger.warning("whatsapp webhook with a bad or missing signature from %s refused", address)
    return None, BAD_SIGNATURE


def receive_notification(body: bytes, signature: str, address: str | None = None) -> tuple[int, dict]:
    """Check, read and store one signed notification; the HTTP status and JSON body to answer with."""
    try:
        channels = whatsapp_channels.directory()
    except DatabaseError:
        logger.exception("whatsapp webhook: the channels could not be read; Meta will retry")
        return 503, {"code": "unavailable", "detail": "Could not store it now; retry."}
    secret, refused = checked(body, signature, address, channels)
    if refused is not None:
        return refused
    return receive_verified(body, secret)


def receive_verified(body: bytes, secret: str) -> tuple[int, dict]:
    """Read and store a notification `secret` signed (the signature was checked)."""
    try:
        try:
            notification = parse_notification(read_body(body))
        except (ValueError, PayloadError) as error:
            logger.warning("whatsapp webhook with an unreadable body: %s", error)
            return 400, {"code": "invalid_payload", "detail": str(error)[:200], "field": "body"}
        for problem in notification.skipped:
            logger.warning("whatsapp webhook: skipped %s", problem)
        return 200, {"received": store(notification, secret)}
    except DatabaseError:
        logger.exception("whatsapp webhook could not be stored; Meta will retry")
        return 503, {"code": "unavailable", "detail": "Could not store it now; retry."}


async def receive_notification_on_loop(
    body: bytes, secret: str, channels: whatsapp_channels.Directory
) -> tuple[int, dict] | None:
    """The usual notification — one message from a patient this process knows, writing into their open
    conversation — stored from the event loop (actions.inbound_fast.areceive_usual_message), once its
    signature was checked against `channels` (the directory read). None for anything else, which
    `receive_verified` then does on a database thread; nothing is stored twice, since this stores either
    the whole notification or nothing."""
    try:
        notification = parse_notification(read_body(body))
    except (ValueError, PayloadError):
        return None
    if len(notification.messages) != 1 or notification.statuses or notification.skipped:
        return None
    message = notification.messages[0]
    clinic_id = whatsapp_channels.routes_of(secret, channels).get(message.phone_number_id)
    patient = message.patient
    if clinic_id is None or message.identity_change is not None or message.echo or not patient.phone:
        return None
    inbound = usual_inbound(clinic_id=clinic_id, **_patient_message(message))
    if inbound is None:
        return None
    try:
        stored = await areceive_usual_message(inbound)
    except Exception:
        logger.warning("whatsapp webhook: the loop's statement failed; the thread takes it", exc_info=True)
        return None
    if stored is None:
        return None
    stored_by_clinic[clinic_id]["event_loop"] += 1
    return 200, {"received": {"messages": 1, "statuses": 0, "ignored": 0}}


def store(notification: Notification, secret: str) -> dict[str, int]:
    """Apply every record whose number belongs to a channel of the app that signed; each commits on its own."""
    routes = whatsapp_channels.routes_of(secret)
    clinics: dict[int, Clinic] = {}
    counts = {"messages": 0, "statuses": 0, "ignored": 0}
    for message in notification.messages:
        clinic_id = routes.get(message.phone_number_id)
        if clinic_id is None:
            logger.warning("whatsapp message for unknown number %s ignored", message.phone_number_id)
            counts["ignored"] += 1
            continue
        try:
            store_message(clinic_id, message, clinics)
        except Clinic.DoesNotExist:  # the clinic went while its channel was still held in memory
            whatsapp_channels.forget()
            logger.warning("whatsapp message for number %s of a removed clinic ignored", message.phone_number_id)
            counts["ignored"] += 1
            continue
        except ActionError as refused:  # e.g. a record naming no patient at all: Meta's retry would not help
            logger.warning("whatsapp message %s refused: %s", message.external_id, refused.detail)
            counts["ignored"] += 1
            continue
        counts["messages"] += 1
    for status in notification.statuses:
        clinic_id = routes.get(status.phone_number_id)
        if clinic_id is None:
            logger.warning("whatsapp status for unknown number %s ignored", status.phone_number_id)
            counts["ignored"] += 1
            continue
        record_provider_status(
            clinic_id=clinic_id,
            external_id=status.external_id,
            status=status.status,
            happened_at=status.happened_at,
            error=status.error,
            message_id=message_id_of_callback(status.callback_data),
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


def _patient_message(message: InboundMessage) -> dict:
    patient = message.patient
    return {
        "phone": patient.phone,
        "whatsapp_id": patient.phone,  # WhatsApp's wa_id, as it gave it: replies go there
        "whatsapp_user_id": patient.user_id,
        "whatsapp_parent_user_id": patient.parent_user_id,
        "whatsapp_username": patient.username,
        "profile_name": patient.name,
        "message_type": message.message_type,
        "content": message.content,
        "metadata": message.metadata,
        "external_id": message.external_id,
        "happened_at": message.happened_at,
        "whatsapp_number_id": message.phone_number_id,
    }


def store_message(clinic_id: int, message: InboundMessage, clinics: dict[int, Clinic] | None = None) -> None:
    """One record: a patient's message, the clinic's echo from the Business app, or a number/id change."""
    patient = message.patient
    if message.identity_change is None and not message.echo and patient.phone:
        inbound = usual_inbound(clinic_id=clinic_id, **_patient_message(message))
        usual = receive_usual_message(inbound) if inbound is not None else None
        if usual is not None:
            stored_by_clinic[clinic_id]["few_statements"] += 1
            return
    stored_by_clinic[clinic_id]["full_action"] += 1
    clinics = {} if clinics is None else clinics
    if clinic_id not in clinics:
        clinics[clinic_id] = Clinic.objects.get(pk=clinic_id)
    ids = {**_identifiers(patient), "whatsapp_username": patient.username, "whatsapp_id": patient.phone}
    common = {
        "clinic": clinics[clinic_id],
        "external_id": message.external_id,
        "happened_at": message.happened_at,
        "metadata": message.metadata,
    }
    number = {"whatsapp_number_id": message.phone_number_id}
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
        record_business_app_echo(**common, **ids, **number, message_type=message.message_type, content=message.content)
    else:
        receive_inbound_message(
            **common,
            **ids,
            **number,
            profile_name=patient.name,
            message_type=message.message_type,
            content=message.content,
        )


@csrf_exempt
@require_http_methods(["GET", "POST"])
def whatsapp_webhook(request: HttpRequest) -> HttpResponse:
    """The verification handshake; and notifications where the ASGI route does not serve them (the test
    client, a WSGI server)."""
    if request.method == "GET":
        return verify_subscription(request)
    try:
        body = request.body
    except RequestDataTooBig:
        return JsonResponse({"code": "too_large", "detail": "The notification is too large."}, status=413)
    signature = request.headers.get("X-Hub-Signature-256", "")
    status, answer = receive_notification(body, signature, request.META.get("REMOTE_ADDR"))
    response = JsonResponse(answer, status=status)
    if "retry_after" in answer:
        response["Retry-After"] = str(answer["retry_after"])
    return response
