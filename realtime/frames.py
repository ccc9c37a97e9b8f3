"""The frames a client may send, checked once at the edge: type, fields and their types."""

import json
from dataclasses import dataclass

MAX_FRAME_BYTES = 64 * 1024  # a client frame's limit (DESIGN §5); taskmed.serve gives it to uvicorn too


class FrameError(ValueError):
    def __init__(self, code: str, detail: str):
        super().__init__(detail)
        self.code, self.detail = code, detail


@dataclass(frozen=True)
class Frame:
    type: str
    data: dict


def _positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**63


def _seq(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63


# type → {field: (check, description)}
SCHEMAS = {
    "auth": {"token": (lambda v: isinstance(v, str) and 0 < len(v) < 4096, "a JWT access token")},
    "ping": {},
    "resume": {"after": (_seq, "the last seq you have, a whole number ≥ 0")},
    "conversation:join": {"conversation_id": (_positive_int, "a conversation id")},
    "conversation:leave": {"conversation_id": (_positive_int, "a conversation id")},
    "conversation:typing": {
        "conversation_id": (_positive_int, "a conversation id"),
        "is_typing": (lambda v: isinstance(v, bool), "true or false"),
    },
    "message:read": {
        "conversation_id": (_positive_int, "a conversation id"),
        "message_id": (_positive_int, "a message id"),
    },
}


def parse(raw: str) -> Frame:
    try:
        frame = json.loads(raw)
    except (ValueError, RecursionError):  # nested thousands deep (64 KiB allows 30,000 levels)
        raise FrameError("invalid_json", "Frames are JSON objects.") from None
    if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
        raise FrameError("invalid_frame", 'Frames are JSON objects with a "type".')
    schema = SCHEMAS.get(frame["type"])
    if schema is None:
        raise FrameError("unknown_type", f"Unknown frame type {frame['type'][:40]!r}; known: {', '.join(SCHEMAS)}.")
    data = {}
    for name, (check, description) in schema.items():
        if name not in frame or not check(frame[name]):
            raise FrameError("invalid_frame", f"{frame['type']} needs {name}: {description}.")
        data[name] = frame[name]
    return Frame(frame["type"], data)
