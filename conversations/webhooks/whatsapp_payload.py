"""Reading a WhatsApp Cloud API notification into plain records; nothing here touches the database."""

from dataclasses import dataclass, field
from datetime import UTC, datetime

MEDIA_TYPES = ("image", "video", "audio", "document", "sticker")
STATUSES = ("sent", "delivered", "read", "failed")


class PayloadError(ValueError):
    """The body is not a WhatsApp notification; the message says what is wrong."""


@dataclass(frozen=True)
class InboundMessage:
    phone_number_id: str
    phone: str
    name: str
    external_id: str
    happened_at: datetime
    message_type: str
    content: str
    metadata: dict = field(default_factory=dict)


@dataclass(frozen=True)
class StatusReport:
    phone_number_id: str
    external_id: str
    status: str
    happened_at: datetime
    error: str = ""


@dataclass
class Notification:
    messages: list[InboundMessage] = field(default_factory=list)
    statuses: list[StatusReport] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # what could not be read, for the log

    @property
    def phone_number_ids(self) -> set[str]:
        return {m.phone_number_id for m in self.messages} | {s.phone_number_id for s in self.statuses}


def parse_notification(payload) -> Notification:
    """Every message and status of every change of every entry, in the order Meta sent them."""
    if not isinstance(payload, dict) or not isinstance(payload.get("entry"), list):
        raise PayloadError('A WhatsApp notification is an object with an "entry" list.')
    notification = Notification()
    for entry in payload["entry"]:
        changes = entry.get("changes") if isinstance(entry, dict) else None
        for change in changes if isinstance(changes, list) else []:
            value = change.get("value") if isinstance(change, dict) else None
            if not isinstance(value, dict):
                notification.skipped.append("a change without a value")
                continue
            number_id = str((value.get("metadata") or {}).get("phone_number_id") or "")
            if not number_id:
                notification.skipped.append("a change without metadata.phone_number_id")
                continue
            names = {
                str(c.get("wa_id")): str((c.get("profile") or {}).get("name") or "")
                for c in value.get("contacts") or []
                if isinstance(c, dict)
            }
            for raw in value.get("messages") or []:
                _read(notification, _message, number_id, raw, names)
            for raw in value.get("statuses") or []:
                _read(notification, _status, number_id, raw)
    return notification


def _read(notification: Notification, convert, *args) -> None:
    """Convert one record; one that cannot be read is noted and skipped, never the whole notification."""
    try:
        record = convert(*args)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        notification.skipped.append(f"{error.__class__.__name__}: {error}")
        return
    if isinstance(record, InboundMessage):
        notification.messages.append(record)
    elif record is not None:
        notification.statuses.append(record)


def _time(raw: dict) -> datetime:
    return datetime.fromtimestamp(int(raw["timestamp"]), tz=UTC)


def _message(number_id: str, raw: dict, names: dict[str, str]) -> InboundMessage:
    kind = str(raw.get("type") or "unknown")
    message_type, content, metadata = _content(kind, raw)
    metadata["whatsapp_type"] = kind
    if isinstance(raw.get("context"), dict):
        metadata["context"] = raw["context"]  # the message this one replies to
    phone = str(raw["from"])
    return InboundMessage(
        phone_number_id=number_id,
        phone=phone,
        name=names.get(phone, ""),
        external_id=str(raw["id"]),
        happened_at=_time(raw),
        message_type=message_type,
        content=content,
        metadata=metadata,
    )


def _content(kind: str, raw: dict) -> tuple[str, str, dict]:
    """(message type, text shown, the rest) for each kind WhatsApp sends; unknown kinds are kept raw."""
    body = raw.get(kind) if isinstance(raw.get(kind), dict) else {}
    if kind == "text":
        return "text", str(body["body"]), {}
    if kind in MEDIA_TYPES:
        keep = ("mime_type", "sha256", "filename", "voice", "animated")
        metadata = {"media_id": str(body["id"]), "media_status": "pending"} | {k: body[k] for k in keep if k in body}
        return kind, str(body.get("caption") or ""), metadata
    if kind == "location":
        text = body.get("name") or body.get("address") or f"{body['latitude']}, {body['longitude']}"
        return (
            "location",
            str(text),
            {k: body[k] for k in ("latitude", "longitude", "name", "address", "url") if k in body},
        )
    if kind == "contacts":
        cards = raw["contacts"]
        shown = "; ".join(
            " ".join(
                [(c.get("name") or {}).get("formatted_name", "")] + [p.get("phone", "") for p in c.get("phones") or []]
            ).strip()
            for c in cards
        )
        return "text", shown, {"contacts": cards}
    if kind == "interactive":
        reply = body.get("button_reply") or body.get("list_reply") or body.get("nfm_reply") or {}
        return "text", str(reply.get("title") or reply.get("body") or ""), {"interactive": body}
    if kind == "button":
        return "text", str(body.get("text") or ""), {"button": body}
    if kind == "reaction":
        return "text", str(body.get("emoji") or ""), {"reaction": body}
    return "unsupported", "", {"raw": raw}


def _status(number_id: str, raw: dict) -> StatusReport | None:
    status = raw.get("status")
    if status not in STATUSES:
        return None  # e.g. "deleted" or "warning": nothing the inbox shows
    return StatusReport(
        phone_number_id=number_id,
        external_id=str(raw["id"]),
        status=status,
        happened_at=_time(raw),
        error=_error(raw.get("errors")) if status == "failed" else "",
    )


def _error(errors) -> str:
    if not errors:
        return "WhatsApp reported the message as failed without a reason."
    first = errors[0]
    details = (first.get("error_data") or {}).get("details") or first.get("message") or ""
    text = f"(#{first.get('code')}) {first.get('title') or ''}".strip()
    return f"{text}: {details}" if details else text
