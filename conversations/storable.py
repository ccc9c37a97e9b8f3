"""Text the database can store: PostgreSQL refuses NUL characters (in text and in JSON) and UTF-8 cannot
encode a lone surrogate, so such input would fail at the insert instead of at the edge."""


def _bad(text: str) -> bool:
    return "\x00" in text or any("\ud800" <= ch <= "\udfff" for ch in text)


def unstorable(value) -> bool:
    """Whether any string in this JSON value (keys included) holds a NUL or a lone surrogate."""
    if isinstance(value, str):
        return _bad(value)
    if isinstance(value, dict):
        return any(unstorable(k) or unstorable(v) for k, v in value.items())
    if isinstance(value, list):
        return any(unstorable(item) for item in value)
    return False


def _clean(text: str) -> str:
    if not _bad(text):
        return text
    return "".join("\ufffd" if "\ud800" <= ch <= "\udfff" else ch for ch in text.replace("\x00", ""))


def storable(value):
    """The JSON value with NULs dropped and lone surrogates replaced (U+FFFD): for what arrives from
    WhatsApp, which is kept rather than refused."""
    if isinstance(value, str):
        return _clean(value)
    if isinstance(value, dict):
        return {_clean(k) if isinstance(k, str) else k: storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [storable(item) for item in value]
    return value
