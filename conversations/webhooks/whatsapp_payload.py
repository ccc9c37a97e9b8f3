"""Reading a WhatsApp Cloud API notification into plain records; nothing here touches the database.

Shapes as Meta documents them: `messages` (with the sender's phone in `from` and its business-scoped
user id in `from_user_id`; the phone is left out for a patient who uses a username), `system` messages
for number and id changes, `statuses`, and `smb_message_echoes` (what the clinic sent from the WhatsApp
Business app on its phone). A record that cannot be read whole is kept as `unsupported` with its raw JSON
rather than dropped; only a record without an id (nothing to deduplicate a retry by) is skipped.
"""

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

MEDIA_TYPES = ("image", "video", "audio", "document", "sticker")
STATUSES = ("sent", "delivered", "read", "failed")
IDENTITY_CHANGES = ("user_changed_number", "user_changed_user_id")
# The keys of a message this parser reads; any other is kept in metadata["extra"], never lost.
READ_KEYS = {
    "from",
    "from_user_id",
    "from_parent_user_id",
    "to",
    "to_user_id",
    "to_parent_user_id",
    "id",
    "timestamp",
    "type",
    "context",
    "referral",
    "errors",
}


class PayloadError(ValueError):
    """The body is not a WhatsApp notification; the message says what is wrong."""


@dataclass(frozen=True)
class Patient:
    """Who the record is about, as far as WhatsApp said: any field may be empty."""

    phone: str = ""
    user_id: str = ""
    parent_user_id: str = ""
    username: str = ""
    name: str = ""


@dataclass(frozen=True)
class IdentityChange:
    """A `system` message: the patient's new number or id (empty when WhatsApp withheld it)."""

    kind: str
    new_phone: str = ""
    new_user_id: str = ""
    new_parent_user_id: str = ""
    previous_user_id: str = ""


@dataclass(frozen=True)
class InboundMessage:
    phone_number_id: str
    patient: Patient
    external_id: str
    happened_at: datetime
    message_type: str
    content: str
    metadata: dict = field(default_factory=dict)
    # Sent by the clinic from the WhatsApp Business app (an echo): outbound, already delivered to WhatsApp.
    echo: bool = False
    identity_change: IdentityChange | None = None


@dataclass(frozen=True)
class StatusReport:
    phone_number_id: str
    external_id: str
    status: str
    happened_at: datetime
    error: str = ""
    callback_data: str = ""  # what the send carried in `biz_opaque_callback_data`, repeated by WhatsApp


@dataclass
class Notification:
    messages: list[InboundMessage] = field(default_factory=list)
    statuses: list[StatusReport] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # what could not be read, for the log

    @property
    def phone_number_ids(self) -> set[str]:
        return {m.phone_number_id for m in self.messages} | {s.phone_number_id for s in self.statuses}


def parse_notification(payload) -> Notification:
    """Every message, echo and status of every change of every entry, in the order Meta sent them."""
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
            kind = change.get("field") or "messages"
            if kind not in ("messages", "smb_message_echoes"):
                notification.skipped.append(f"a change of field {str(kind)[:40]!r}, which the inbox does not use")
                continue
            number_id = str((value.get("metadata") or {}).get("phone_number_id") or "")
            if not number_id:
                notification.skipped.append("a change without metadata.phone_number_id")
                continue
            profiles = _profiles(value.get("contacts"))
            for raw in _list(value.get("messages")):
                _read(notification, _message, number_id, raw, profiles, False)
            for raw in _list(value.get("message_echoes")):
                _read(notification, _message, number_id, raw, profiles, True)
            for raw in _list(value.get("statuses")):
                _read(notification, _status, number_id, raw)
    return notification


def _list(value) -> list:
    return value if isinstance(value, list) else []


def _text(value) -> str:
    return str(value).strip() if isinstance(value, str | int) and not isinstance(value, bool) else ""


def _profiles(contacts) -> list[Patient]:
    """The `contacts` array: each patient's phone (`wa_id`, left out when withheld), ids and profile."""
    found = []
    for contact in _list(contacts):
        if not isinstance(contact, dict):
            continue
        profile = contact.get("profile") if isinstance(contact.get("profile"), dict) else {}
        found.append(
            Patient(
                phone=_text(contact.get("wa_id")),
                user_id=_text(contact.get("user_id")),
                parent_user_id=_text(contact.get("parent_user_id")),
                username=_text(profile.get("username")),
                name=_text(profile.get("name")),
            )
        )
    return found


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


def _time(raw: dict, metadata: dict | None = None) -> datetime:
    """When it happened; a missing or impossible timestamp becomes now (noted), never a lost message."""
    try:
        return datetime.fromtimestamp(int(raw["timestamp"]), tz=UTC)
    except (KeyError, TypeError, ValueError, OverflowError, OSError):
        if metadata is None:
            raise ValueError(f"unreadable timestamp {str(raw.get('timestamp'))[:40]!r}") from None
        metadata["timestamp_unreadable"] = str(raw.get("timestamp"))[:40]
        return datetime.now(tz=UTC)


def _patient(raw: dict, profiles: list[Patient], echo: bool) -> Patient:
    """The patient of a message (its sender) or of an echo (its recipient), with the matching profile."""
    prefix = "to" if echo else "from"
    phone, user_id = _text(raw.get(prefix)), _text(raw.get(f"{prefix}_user_id"))
    parent = _text(raw.get(f"{prefix}_parent_user_id"))
    profile = next(
        (p for p in profiles if (user_id and p.user_id == user_id) or (phone and p.phone == phone)),
        profiles[0] if len(profiles) == 1 else Patient(),
    )
    return Patient(
        phone=phone or profile.phone,
        user_id=user_id or profile.user_id,
        parent_user_id=parent or profile.parent_user_id,
        username=profile.username,
        # An echo's contact is named by the clinic's phone book, not by a profile the patient set.
        name="" if echo else profile.name,
    )


def _message(number_id: str, raw: dict, profiles: list[Patient], echo: bool) -> InboundMessage:
    if not isinstance(raw, dict) or not _text(raw.get("id")):
        raise ValueError("a message without an id")
    kind = _text(raw.get("type")) or "unknown"
    metadata: dict = {}
    change = None
    if kind == "system":
        message_type, content, metadata, change = _system(raw)
    else:
        try:
            message_type, content, metadata = _content(kind, raw)
        except (KeyError, TypeError, ValueError, AttributeError):
            message_type, content, metadata = "unsupported", "", {"raw": raw}  # kept, never dropped
    metadata["whatsapp_type"] = kind
    for key in ("context", "referral"):
        if isinstance(raw.get(key), dict):
            metadata[key] = raw[key]  # the message replied to; the ad the patient came from
    if raw.get("errors") and "raw" not in metadata:
        metadata["errors"] = raw["errors"]
    extra = {key: value for key, value in raw.items() if key not in READ_KEYS and key != kind}
    if extra and "raw" not in metadata:
        metadata["extra"] = extra
    happened_at = _time(raw, metadata)
    return InboundMessage(
        phone_number_id=number_id,
        patient=_patient(raw, profiles, echo),
        external_id=_text(raw["id"]),
        happened_at=happened_at,
        message_type=message_type,
        content=content,
        metadata=metadata,
        echo=echo,
        identity_change=change,
    )


def _system(raw: dict) -> tuple[str, str, dict, IdentityChange | None]:
    body = raw.get("system") if isinstance(raw.get("system"), dict) else {}
    kind = _text(body.get("type"))
    text = _text(body.get("body")) or "WhatsApp informou uma mudança na conta do paciente."
    metadata = {"system": body}
    if kind not in IDENTITY_CHANGES:
        return "system", text, metadata, None
    change = IdentityChange(
        kind=kind,
        new_phone=_text(body.get("wa_id")),
        new_user_id=_text(body.get("user_id")),
        new_parent_user_id=_text(body.get("parent_user_id")),
        previous_user_id=_text(body.get("previous_user_id")),
    )
    return "system", text, metadata, change


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
        return _interactive(body)
    if kind == "button":
        return "text", str(body.get("text") or ""), {"button": body}
    if kind == "reaction":
        return "text", str(body.get("emoji") or ""), {"reaction": body}
    if kind == "edit":  # the patient edited a message: its new text (or caption), for the message it edits
        edited = body["message"] if isinstance(body.get("message"), dict) else {}
        inner_kind = _text(edited.get("type")) or "text"
        inner = edited.get(inner_kind) if isinstance(edited.get(inner_kind), dict) else {}
        text = inner.get("body") if inner_kind == "text" else inner.get("caption")
        return "text", str(text or ""), {"edit": {"original_message_id": str(body["original_message_id"])}}
    if kind == "revoke":  # the patient deleted a message for everyone
        return "text", "", {"revoke": {"original_message_id": str(body["original_message_id"])}}
    return "unsupported", "", {"raw": raw}


def _interactive(body: dict) -> tuple[str, str, dict]:
    """A tapped button or list row, or a WhatsApp Flow's answers (`nfm_reply`), kept even when broken."""
    if isinstance(body.get("nfm_reply"), dict):
        reply = body["nfm_reply"]
        metadata: dict = {"interactive": body}
        try:
            answers = json.loads(reply.get("response_json") or "")
            if not isinstance(answers, dict):
                raise ValueError("not an object")
        except (TypeError, ValueError, RecursionError):
            metadata["flow_response_error"] = "WhatsApp sent the form's answers in a shape that could not be read."
            return "text", str(reply.get("body") or "Formulário respondido"), metadata
        metadata["flow_response"] = answers
        shown = "; ".join(f"{key}: {value}" for key, value in answers.items() if key != "flow_token")
        return "text", f"Formulário respondido — {shown}" if shown else "Formulário respondido", metadata
    reply = body.get("button_reply") or body.get("list_reply") or {}
    return "text", str(reply.get("title") or ""), {"interactive": body}


def _status(number_id: str, raw: dict) -> StatusReport | None:
    status = raw.get("status")
    if status not in STATUSES:
        return None  # e.g. "deleted" or "warning": nothing the inbox shows
    # Matched by the message's id: the recipient may be a phone (`recipient_id`) or, for a patient
    # without one, a user id (`recipient_user_id`); neither is needed to apply it.
    return StatusReport(
        phone_number_id=number_id,
        external_id=_text(raw["id"]),
        status=status,
        happened_at=_time(raw),
        error=_error(raw.get("errors")) if status == "failed" else "",
        callback_data=_text(raw.get("biz_opaque_callback_data") or "")[:512],
    )


def _error(errors) -> str:
    if not errors:
        return "WhatsApp reported the message as failed without a reason."
    first = errors[0]
    details = (first.get("error_data") or {}).get("details") or first.get("message") or ""
    text = f"(#{first.get('code')}) {first.get('title') or ''}".strip()
    return f"{text}: {details}" if details else text
