"""Web Push to staff's devices (DESIGN §12: nothing leaves the building about a patient by push): the client
that encrypts (RFC 8291) and signs (VAPID) with pywebpush, what a push says — the clinic's name, what
happened and the conversation's id, never a patient's name, number or words — and, per process, which
clinics have devices to tell at all (so the webhook's fast path asks the worker for nothing otherwise)."""

import json
import logging
import re
from urllib.parse import urlsplit

from django.conf import settings
from django.db import connection
from urllib3.util import parse_url

from conversations.held import HeldPerClinic
from conversations.models import PushSubscription

logger = logging.getLogger(__name__)
GONE = frozenset({404, 410})  # the push service says this subscription no longer exists
TTL_SECONDS = 12 * 3600  # a device offline longer gets nothing stale
BODIES = {
    "message": "Nova mensagem",
    "mention": "Você foi mencionado numa nota",
    "late": "Paciente aguardando além da meta de resposta",
}
RELOAD_SECONDS = 60.0
CONNECT_SECONDS = 3


def configured() -> bool:
    return bool(settings.WEB_PUSH_PUBLIC_KEY and settings.WEB_PUSH_PRIVATE_KEY)


UNSAFE_IN_ENDPOINT = re.compile(r"[\\@\s\x00-\x1f\x7f]")


def allowed_endpoint(endpoint: str) -> bool:
    """Whether a subscription's endpoint is one of the push services this server posts to: HTTPS on the
    usual port (plain HTTP only to this machine, for a stand-in). Nothing that URL parsers read differently
    (a backslash, credentials, spaces, control characters) is taken, and the host must be the same to the
    standard library's parser and to the HTTP client's (urllib3), which is the one that connects."""
    if not isinstance(endpoint, str) or UNSAFE_IN_ENDPOINT.search(endpoint):
        return False
    try:
        parts = urlsplit(endpoint)
        host, port = (parts.hostname or "").lower(), parts.port
        connects_to = (parse_url(endpoint).host or "").lower()
    except ValueError:
        return False
    local = host in ("127.0.0.1", "localhost")
    if host != connects_to or not host:
        return False
    if parts.scheme == "https":
        if port not in (None, 443) and not local:
            return False
    elif not (parts.scheme == "http" and local):
        return False
    return any(host == allowed or host.endswith(f".{allowed}") for allowed in settings.WEB_PUSH_HOSTS)


def payload(kind: str, clinic_id: int, clinic_name: str, conversation_id: int) -> dict:
    """What a device is told: the clinic, what happened and where to look — nothing about the patient. The
    URL names the clinic, so a member of several is taken to it (after choosing it, or logging in)."""
    return {
        "kind": kind,
        "title": clinic_name,
        "body": BODIES[kind],
        "clinic_id": clinic_id,
        "conversation_id": conversation_id,
        "url": f"/inbox/{conversation_id}/?clinic={clinic_id}",
    }


def send(subscription: PushSubscription, data: dict) -> str:
    """Push `data` to one device: "sent", "gone" (the service no longer knows it) or "failed" (logged)."""
    from pywebpush import WebPushException, webpush

    try:
        webpush(
            subscription_info={
                "endpoint": subscription.endpoint,
                "keys": {"p256dh": subscription.p256dh, "auth": subscription.auth},
            },
            data=json.dumps(data),
            vapid_private_key=settings.WEB_PUSH_PRIVATE_KEY,
            vapid_claims={"sub": settings.WEB_PUSH_SUBJECT},
            ttl=TTL_SECONDS,
            timeout=(CONNECT_SECONDS, settings.WEB_PUSH_TIMEOUT_SECONDS),  # a push service away fails fast
        )
    except WebPushException as refused:
        status = getattr(refused.response, "status_code", None)
        if status in GONE:
            return "gone"
        logger.warning("push to device %s refused (%s): %s", subscription.pk, status, refused)
        return "failed"
    except Exception:  # a push service away, a malformed key: the others are still told
        logger.warning("push to device %s failed", subscription.pk, exc_info=True)
        return "failed"
    return "sent"


# --- Which clinics have devices to tell -------------------------------------------------------------------

_held: HeldPerClinic[bool] = HeldPerClinic(RELOAD_SECONDS)


def statement(clinic_id: int) -> tuple[str, dict]:
    table = connection.ops.quote_name(PushSubscription._meta.db_table)
    return f"SELECT EXISTS (SELECT 1 FROM {table} WHERE clinic_id = %(clinic_id)s)", {"clinic_id": clinic_id}


def remember(clinic_id: int, row: tuple | None) -> bool:
    return _held.put(clinic_id, bool(row and row[0]))


def held(clinic_id: int) -> bool | None:
    """Whether the clinic has devices to tell, if this process holds it fresh; else None (never a query)."""
    return _held.get(clinic_id)


def wanted(clinic_id: int) -> bool:
    """Whether to ask the worker to tell the clinic's devices: push is on and the clinic has some."""
    if not configured():
        return False
    found = held(clinic_id)
    if found is None:
        sql, params = statement(clinic_id)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            found = remember(clinic_id, cursor.fetchone())
    return found


def forget(message: dict | None = None) -> None:
    """A clinic's devices changed: ask again on next use (a control message's handler, and the change's)."""
    _held.forget(message)
