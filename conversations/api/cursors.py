"""Opaque keyset cursors: the sort position of the last row, so pages stay right while rows arrive."""

import base64
import binascii
import json
from datetime import datetime

from rest_framework.exceptions import ValidationError


def encode(*position) -> str:
    raw = json.dumps([p.isoformat() if isinstance(p, datetime) else p for p in position], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_activity(cursor: str) -> tuple[datetime, int]:
    """A conversation-list cursor: (activity time, id)."""
    try:
        at, pk = _decode(cursor)
        return datetime.fromisoformat(at), int(pk)
    except (ValueError, TypeError):
        raise ValidationError(
            {"cursor": ["Not a cursor this API gave out; start again without it."]}, code="invalid_cursor"
        ) from None


def decode_id(cursor: str) -> int:
    try:
        (pk,) = _decode(cursor)
        return int(pk)
    except (ValueError, TypeError):
        raise ValidationError(
            {"cursor": ["Not a cursor this API gave out; start again without it."]}, code="invalid_cursor"
        ) from None


def _decode(cursor: str) -> list:
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise ValueError(str(error)) from None
    if not isinstance(value, list):
        raise ValueError("not a list")
    return value


def decode_offset(cursor: str, *, most: int) -> int:
    """A ranked list's cursor: how many rows came before (0 to `most`)."""
    try:
        (offset,) = _decode(cursor)
        if not isinstance(offset, int) or not 0 <= offset <= most:
            raise ValueError("out of range")
        return offset
    except (ValueError, TypeError):
        raise ValidationError(
            {"cursor": ["Not a cursor this API gave out; start again without it."]}, code="invalid_cursor"
        ) from None
