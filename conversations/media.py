"""Which files WhatsApp accepts, by type and size, and what kind of message each makes; what a file is,
by its bytes rather than by what the browser said."""

import codecs
import re

import filetype

MB = 1024 * 1024
# message type → (content types, largest size in bytes), as the WhatsApp Cloud API documents them.
WHATSAPP_MEDIA: dict[str, tuple[frozenset[str], int]] = {
    "image": (frozenset({"image/jpeg", "image/png"}), 5 * MB),
    "sticker": (frozenset({"image/webp"}), 500 * 1024),
    "video": (frozenset({"video/mp4", "video/3gpp"}), 16 * MB),
    "audio": (frozenset({"audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg"}), 16 * MB),
    "document": (
        frozenset(
            {
                "application/pdf",
                "text/plain",
                "application/msword",
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                "application/vnd.ms-excel",
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                "application/vnd.ms-powerpoint",
                "application/vnd.openxmlformats-officedocument.presentationml.presentation",
            }
        ),
        100 * MB,
    ),
}


SNIFF_BYTES = 8192  # enough for every signature `filetype` knows, the Office formats' included
# Containers whose signature does not tell which of these a file is: the declared type says.
SAME_CONTAINER = (
    frozenset({"video/mp4", "audio/mp4", "video/3gpp", "video/x-m4v", "video/quicktime"}),
    frozenset({"audio/ogg", "video/ogg"}),
)


def _is_text(head: bytes) -> bool:
    """UTF-8 with no NUL byte (a cut at the end of `head` is allowed)."""
    if b"\x00" in head:
        return False
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return False
    return True


def content_type_of(head: bytes, declared: str | None) -> str:
    """What a file is, from its first bytes: a declared type is believed only where the bytes cannot tell
    (which of one container's types; plain text, which has no signature). A file that is none of the types
    WhatsApp accepts comes out as a type message_type_for refuses."""
    declared = (declared or "").split(";")[0].strip().lower()
    kind = filetype.guess(head)
    if kind is None:
        unsure = declared in ("text/plain", "", "application/octet-stream")
        return "text/plain" if unsure and _is_text(head) else "application/octet-stream"
    if any(kind.mime in family and declared in family for family in SAME_CONTAINER):
        return declared
    return kind.mime


def message_type_for(content_type: str, size: int) -> str:
    """The message type a file makes; raises ValueError saying what WhatsApp accepts instead."""
    if size == 0:
        raise ValueError("The file is empty.")
    for message_type, (types, limit) in WHATSAPP_MEDIA.items():
        if content_type in types:
            if size > limit:
                raise ValueError(
                    f"WhatsApp accepts {message_type} files up to {limit // 1024} KB; this one has {size // 1024} KB."
                )
            return message_type
    raise ValueError(
        f"WhatsApp does not accept {content_type} files; send images, video, audio, PDFs or Office documents."
    )


CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]+")


def safe_file_name(given: str, fallback: str) -> str:
    """A name a sender chose (a patient's document name, say) that is safe to store and to show: its last
    path part only, no control characters, no leading dots (`..`, hidden files), at most 200 characters
    keeping the extension; `fallback` when nothing is left."""
    last_part = str(given).replace("\\", "/").rsplit("/", 1)[-1]
    name = CONTROL_CHARACTERS.sub("", last_part).strip().lstrip(".").strip()
    if len(name) > 200:
        stem, dot, extension = name.rpartition(".")
        name = f"{stem[: 190 - len(extension)]}.{extension[:9]}" if dot and len(extension) <= 9 else name[:200]
    return name or fallback
