"""Which files WhatsApp accepts, by type and size, and what kind of message each makes."""

import mimetypes

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


def content_type_of(file_name: str, declared: str | None) -> str:
    """The declared type without parameters, or the file name's when the client sent none useful."""
    content_type = (declared or "").split(";")[0].strip().lower()
    if not content_type or content_type == "application/octet-stream":
        content_type = mimetypes.guess_type(file_name)[0] or "application/octet-stream"
    return content_type


def message_type_for(content_type: str, size: int) -> str:
    """The message type a file makes; raises ValueError saying what WhatsApp accepts instead."""
    for message_type, (types, limit) in WHATSAPP_MEDIA.items():
        if content_type in types:
            if size > limit:
                raise ValueError(
                    f"WhatsApp accepts {message_type} files up to {limit // 1024} KB; this one has {size // 1024} KB."
                )
            if size == 0:
                raise ValueError("The file is empty.")
            return message_type
    raise ValueError(
        f"WhatsApp does not accept {content_type} files; send images, video, audio, PDFs or Office documents."
    )
