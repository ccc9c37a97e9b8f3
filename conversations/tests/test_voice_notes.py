"""Voice notes: an OGG/Opus recording sent with `voice: true` goes to WhatsApp as a voice note (`audio` with
`voice: true`, uploaded and named by id; Meta mocked at the HTTP boundary), its duration read from the file's
own pages and shown; anything but OGG/Opus is refused as a voice note before storing; a patient's voice note
shows the transcript the n8n assistant posts (an action, never a message)."""

import json
import struct

import httpx
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from conversations.actions.inbound import receive_inbound_message
from conversations.models import Message
from conversations.templatetags.clinic_time import duration_clock
from conversations.tests.test_delivery import PNID, accepted, conversation, graph, reloaded, run_worker  # noqa: F401
from conversations.tests.test_phones import n8n  # noqa: F401 (the fixture)
from conversations.voice import duration_seconds

pytestmark = pytest.mark.django_db(transaction=True)


def _crc(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
            crc &= 0xFFFFFFFF
    return crc


def _page(packet: bytes, granule: int, sequence: int, flags: int) -> bytes:
    lacing = [255] * (len(packet) // 255) + [len(packet) % 255]
    header = b"OggS" + bytes([0, flags]) + struct.pack("<qII", granule, 7, sequence) + b"\0\0\0\0"
    page = header + bytes([len(lacing)]) + bytes(lacing) + packet
    return page[:22] + struct.pack("<I", _crc(page)) + page[26:]


def ogg_opus(seconds: float) -> bytes:
    """A valid OGG/Opus file of `seconds` of 20 ms packets (RFC 7845): what the browser's recorder makes."""
    head = b"OpusHead" + bytes([1, 1]) + struct.pack("<HIhB", 312, 48000, 0, 0)
    tags = b"OpusTags" + struct.pack("<I", 7) + b"TaskMed" + struct.pack("<I", 0)
    pages = [_page(head, 0, 0, 2), _page(tags, 0, 1, 0)]
    count = int(seconds / 0.02)
    for n in range(count):
        pages.append(_page(bytes([0xF8, 0xFF, 0xFE]), 312 + (n + 1) * 960, n + 2, 4 if n == count - 1 else 0))
    return b"".join(pages)


def test_the_duration_is_read_from_the_files_own_pages():
    assert duration_seconds(ogg_opus(3.0)) == 3.0
    assert duration_seconds(b"OggS" + b"\0" * 100) is None and duration_seconds(b"ID3") is None
    assert duration_clock(7.4) == "0:07" and duration_clock(92) == "1:32"


def test_a_recorded_voice_note_goes_to_whatsapp_as_one(jwt_client, member, conversation, graph, client):  # noqa: F811
    upload = graph.post(f"/{PNID}/media").mock(return_value=httpx.Response(200, json={"id": "99"}))
    send = graph.post(f"/{PNID}/messages").mock(return_value=accepted("wamid.VOICE"))
    recording = SimpleUploadedFile("mensagem-de-voz.ogg", ogg_opus(4.2), content_type="audio/ogg")
    response = jwt_client(member).post(
        f"/api/conversations/{conversation.pk}/messages/", {"file": recording, "voice": "true"}, format="multipart"
    )
    assert response.status_code == 201, response.content
    message = Message.objects.get(pk=response.json()["id"])
    assert message.message_type == "audio" and message.metadata["voice"] is True
    assert message.metadata["duration_seconds"] == 4.2
    run_worker()
    assert upload.call_count == 1 and reloaded(message).status == "sent"
    assert json.loads(send.calls.last.request.content)["audio"] == {"id": "99", "voice": True}
    client.force_login(member)
    page = client.get(f"/inbox/{conversation.pk}/").text
    assert "Mensagem de voz · 0:04" in page


@pytest.mark.parametrize(
    "name,content,content_type,text",
    [
        ("musica.mp3", b"ID3\x03\x00\x00\x00" + b"\0" * 64, "audio/mpeg", ""),
        ("foto.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 64, "image/png", ""),
        ("mensagem.ogg", None, "audio/ogg", "com texto"),
    ],
)
def test_anything_but_an_ogg_opus_recording_is_refused_as_a_voice_note(
    jwt_client,
    member,
    conversation,  # noqa: F811
    name,
    content,
    content_type,
    text,  # noqa: F811
):
    file = SimpleUploadedFile(name, content or ogg_opus(1), content_type=content_type)
    before = Message.objects.count()
    response = jwt_client(member).post(
        f"/api/conversations/{conversation.pk}/messages/",
        {"file": file, "voice": "true", "content": text},
        format="multipart",
    )
    assert response.status_code == 400 and response.json()["field"] in ("voice", "content"), response.content
    assert Message.objects.count() == before


def test_the_assistants_transcript_shows_under_the_patients_voice_note(n8n, clinic, member, client):  # noqa: F811
    voice = receive_inbound_message(
        clinic=clinic,
        phone="5511987654321",
        message_type="audio",
        external_id="wamid.PATIENTVOICE",
        metadata={"media_id": "5", "voice": True, "media_status": "failed", "media_error": "x"},
    ).message
    before = Message.objects.count()
    posted = n8n(
        {
            "phone": "+55 11 98765-4321",
            "action_type": "audio_transcribed",
            "action_data": {"message_id": "wamid.PATIENTVOICE", "transcript": "Queria remarcar para sexta"},
        }
    )
    assert posted.status_code in (200, 201), posted.content
    assert Message.objects.count() == before, "an action, never a message"
    client.force_login(member)
    page = client.get(f"/inbox/{voice.conversation_id}/").text
    bubble = page.split(f'id="m{voice.pk}"')[1].split("</article>")[0]
    assert "Transcrição:" in bubble and "Queria remarcar para sexta" in bubble and "Mensagem de voz" in bubble


def test_pages_that_claim_too_much_or_are_not_pages_give_no_duration():
    real = ogg_opus(1.0)
    absurd = real[: real.rfind(b"OggS") + 6] + struct.pack("<q", 2**62) + real[real.rfind(b"OggS") + 14 :]
    assert duration_seconds(absurd) is None
    inside_a_packet = real + b"OggS" + b"\x07" * 30  # "OggS" in data, not a page of this stream
    assert duration_seconds(inside_a_packet) == 1.0


def test_a_voice_notes_transcript_goes_with_it_when_retention_purges_it(n8n, clinic):  # noqa: F811
    from datetime import timedelta

    from django.utils import timezone

    from conversations.actions.privacy import purge_expired
    from conversations.models import ConversationAction

    voice = receive_inbound_message(
        clinic=clinic,
        phone="5511987654321",
        message_type="audio",
        external_id="wamid.OLDVOICE",
        metadata={"media_id": "5", "voice": True, "media_status": "failed", "media_error": "x"},
        happened_at=timezone.now() - timedelta(days=400),
    ).message
    receive_inbound_message(clinic=clinic, phone="5511987654321", content="Oi de novo", external_id="wamid.NEW")
    n8n(
        {
            "phone": "+55 11 98765-4321",
            "action_type": "audio_transcribed",
            "action_data": {"message_id": "wamid.OLDVOICE", "transcript": "um diagnóstico"},
        }
    )
    clinic.retention_days = 365
    clinic.save(update_fields=["retention_days"])
    purge_expired(clinic=clinic)
    assert not Message.objects.filter(pk=voice.pk).exists()
    assert not ConversationAction.objects.filter(action_type="audio_transcribed").exists()
