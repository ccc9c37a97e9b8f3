"""Media sent the way WhatsApp wants each type: uploaded to the Graph API's media endpoint, then sent by id —
documents with their file name, captions only where WhatsApp shows them (image, video, document), audio and
stickers without — and refused before storing past Meta's limits, with the limit named (Meta mocked at the
HTTP boundary, the real client running)."""

import json

import httpx
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from conversations.models import Message
from conversations.tests.test_delivery import PNID, accepted, conversation, graph, reloaded, run_worker, send  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)
OGG = b"OggS\x00\x02" + b"\x00" * 22 + b"\x01\x13OpusHead" + b"\x00" * 40
MP4 = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + b"\x00" * 40
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 " + b"\x00" * 40
PDF = b"%PDF-1.4\n" + b"0" * 40


@pytest.mark.parametrize(
    "name,content,content_type,kind,expected",
    [
        ("exame.pdf", PDF, "application/pdf", "document", {"caption": "Seu exame", "filename": "exame.pdf"}),
        ("orientacao.ogg", OGG, "audio/ogg", "audio", {}),
        ("video.mp4", MP4, "video/mp4", "video", {"caption": "Seu exame"}),
        ("figurinha.webp", WEBP, "image/webp", "sticker", {}),
    ],
)
def test_each_kind_is_uploaded_then_sent_by_id_as_whatsapp_wants_it(
    graph,  # noqa: F811
    conversation,  # noqa: F811
    member,
    name,
    content,
    content_type,
    kind,
    expected,
):
    upload = graph.post(f"/{PNID}/media").mock(return_value=httpx.Response(200, json={"id": "77"}))
    route = graph.post(f"/{PNID}/messages").mock(return_value=accepted())
    file = SimpleUploadedFile(name, content, content_type)
    text = "" if kind in ("audio", "sticker") else "Seu exame"  # WhatsApp shows no text with these
    message = send(conversation, member, content=text, attachment=file)
    assert message.message_type == kind
    run_worker()
    assert reloaded(message).status == "sent" and upload.call_count == 1
    sent = json.loads(route.calls.last.request.content)
    assert sent["type"] == kind and sent[kind] == {"id": "77", **expected}


def test_a_file_past_metas_limit_is_refused_before_storing_naming_the_limit(jwt_client, member, conversation):  # noqa: F811
    big = SimpleUploadedFile("figurinha.webp", WEBP + b"\x00" * 600 * 1024, content_type="image/webp")
    before = Message.objects.count()
    response = jwt_client(member).post(
        f"/api/conversations/{conversation.pk}/messages/", {"file": big}, format="multipart"
    )
    assert response.status_code == 400 and response.json()["field"] == "file"
    assert "500 KB" in response.json()["detail"] and Message.objects.count() == before


@pytest.mark.parametrize("name,content,content_type", [("a.ogg", OGG, "audio/ogg"), ("f.webp", WEBP, "image/webp")])
def test_text_with_an_audio_or_a_sticker_is_refused_rather_than_lost(
    jwt_client,
    member,
    conversation,  # noqa: F811
    name,
    content,
    content_type,  # noqa: F811
):
    before = Message.objects.count()
    response = jwt_client(member).post(
        f"/api/conversations/{conversation.pk}/messages/",
        {"content": "Ouça", "file": SimpleUploadedFile(name, content, content_type)},
        format="multipart",
    )
    assert response.status_code == 400 and response.json()["field"] == "content"
    assert Message.objects.count() == before
