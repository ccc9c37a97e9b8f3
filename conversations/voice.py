"""Voice notes (WhatsApp's `audio` with `voice: true`): an OGG file with the Opus codec, as WhatsApp requires
for voice (others lose the voice note's play icon and transcription). What the file is, and how long it
plays, read from its own pages: Opus counts time in 48 kHz samples, the last page says how many, and the
OpusHead says how many to skip at the start."""

import struct

OPUS_RATE = 48_000
MAX_HOURS = 24  # a voice note's pages claiming more are not believed
# The n8n assistant's transcript of a voice note: a timeline action naming the message (its WhatsApp id or ours).
TRANSCRIBED = "audio_transcribed"


def is_ogg_opus(head: bytes) -> bool:
    """Whether a file's first bytes are an OGG stream carrying Opus (its first packet is the OpusHead)."""
    return head.startswith(b"OggS") and b"OpusHead" in head[:80]


def duration_seconds(content: bytes) -> float | None:
    """How long an OGG/Opus file plays, or None when its pages cannot say."""
    if not is_ogg_opus(content[:128]):
        return None
    head = content.find(b"OpusHead")
    pre_skip = struct.unpack_from("<H", content, head + 10)[0] if head + 12 <= len(content) else 0
    serial = content[14:18]
    last = len(content)
    while (last := content.rfind(b"OggS", 0, last)) >= 0:
        # A real page: version 0 and the stream's own serial number (not "OggS" inside a packet's bytes).
        if last + 27 <= len(content) and content[last + 4] == 0 and content[last + 14 : last + 18] == serial:
            break
    if last < 0:
        return None
    granule = struct.unpack_from("<q", content, last + 6)[0]
    seconds = max(0, granule - pre_skip) / OPUS_RATE
    if granule <= 0 or seconds > MAX_HOURS * 3600:
        return None
    return round(seconds, 2)
