"""Voice notes (WhatsApp's `audio` with `voice: true`): an OGG file with the Opus codec, as WhatsApp requires
for voice (others lose the voice note's play icon and transcription). What the file is, and how long it
plays, read from its own pages: Opus counts time in 48 kHz samples, the last page says how many, and the
OpusHead says how many to skip at the start."""

import struct

OPUS_RATE = 48_000
MAX_VOICE_BYTES = 16 * 1024 * 1024


def is_ogg_opus(head: bytes) -> bool:
    """Whether a file's first bytes are an OGG stream carrying Opus (its first packet is the OpusHead)."""
    return head.startswith(b"OggS") and b"OpusHead" in head[:80]


def duration_seconds(content: bytes) -> float | None:
    """How long an OGG/Opus file plays, or None when its pages cannot say."""
    if not is_ogg_opus(content[:128]):
        return None
    head = content.find(b"OpusHead")
    pre_skip = struct.unpack_from("<H", content, head + 10)[0] if head + 12 <= len(content) else 0
    last = content.rfind(b"OggS")
    if last < 0 or last + 14 > len(content):
        return None
    granule = struct.unpack_from("<q", content, last + 6)[0]
    if granule <= 0:
        return None
    return round(max(0, granule - pre_skip) / OPUS_RATE, 2)
