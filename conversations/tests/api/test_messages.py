"""Messages over the API: pages of the timeline, sending text and files, read marks, and bad input."""

import json
import uuid
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from conversations.actions.inbound import receive_inbound_message
from conversations.models import Message, MessageAttachment, ReadMarker
from realtime.models import Event

pytestmark = pytest.mark.usefixtures("simulated_number")  # replies go somewhere: the demo's kind of number

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.fixture
def api(jwt_client, member):
    return jwt_client(member)


@pytest.fixture
def conversation(clinic):
    start = timezone.now() - timedelta(hours=1)
    result = None
    for n in range(10):
        result = receive_inbound_message(
            clinic=clinic,
            phone="5511987654321",
            content=f"m{n}",
            external_id=f"w{n}",
            happened_at=start + timedelta(minutes=n),
        )
    return result.conversation


def url(conversation, tail="messages/"):
    return f"/api/conversations/{conversation.pk}/{tail}"


def contents(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [m["content"] for m in response.json()["results"]]


def test_pages_before_and_after_a_message(api, conversation):
    by_content = {m.content: m.pk for m in conversation.messages.all()}
    older = api.get(url(conversation), {"before": by_content["m5"], "limit": 3})
    assert contents(older) == ["m2", "m3", "m4"] and older.json()["has_more"] is True
    newer = api.get(url(conversation), {"after": by_content["m5"], "limit": 3})
    assert contents(newer) == ["m6", "m7", "m8"] and newer.json()["has_more"] is True
    assert contents(api.get(url(conversation), {"after": by_content["m8"]})) == ["m9"]


@pytest.mark.parametrize(
    "query,field", [({"before": "x"}, "before"), ({"limit": 500}, "limit"), ({"before": 1, "after": 2}, "after")]
)
def test_bad_page_parameters(api, conversation, query, field):
    response = api.get(url(conversation), query)
    assert response.status_code == 400 and response.json()["field"] == field


def test_a_message_of_another_conversation_is_no_anchor(api, conversation, other_clinic):
    foreign = receive_inbound_message(clinic=other_clinic, phone="5511900000000", content="x").message
    response = api.get(url(conversation), {"before": foreign.pk})
    assert response.status_code == 400 and response.json()["field"] == "before"


def test_sending_text_is_pending_and_idempotent_on_client_id(api, conversation, member):
    client_id = str(uuid.uuid4())
    first = api.post(url(conversation), {"content": "Bom dia!", "client_id": client_id}, format="json")
    assert first.status_code == 201
    body = first.json()
    assert (body["status"], body["direction"], body["client_id"], body["sender"]["id"]) == (
        "pending",
        "outbound",
        client_id,
        member.pk,
    )
    again = api.post(url(conversation), {"content": "Bom dia!", "client_id": client_id}, format="json")
    assert again.status_code == 200 and again.json()["id"] == body["id"]
    assert Message.objects.filter(direction="outbound").count() == 1


def test_sending_a_photo_with_a_caption(api, conversation):
    photo = SimpleUploadedFile("receita.png", PNG, content_type="image/png")
    response = api.post(url(conversation), {"content": "Sua receita", "file": photo}, format="multipart")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["message_type"] == "image" and body["content"] == "Sua receita"
    assert body["attachments"][0]["file_name"] == "receita.png" and body["attachments"][0]["size"] == len(PNG)
    frame = Event.objects.filter(type="message:new").latest("seq")
    assert frame.data["message"]["message_type"] == "image" and frame.data["message"]["id"] == body["id"]


PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n"
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" + b"\x00" * 64


@pytest.mark.parametrize(
    "name,content_type,content,reason",
    [
        ("virus.exe", "application/x-msdownload", EXE, "does not accept"),
        ("sticker.webp", "image/webp", b"RIFF\x00\x00\x00\x00WEBPVP8 " + b"x" * 600 * 1024, "up to 500 KB"),
        ("vazio.pdf", "application/pdf", b"", "O arquivo submetido"),  # DRF's own refusal
        # lying about what they are: the bytes say
        ("receita.png", "image/png", b"<html><script>alert(1)</script></html>", "does not accept"),
        ("receita.pdf", "application/pdf", EXE, "does not accept application/x-msdownload"),
        ("notas.txt", "text/plain", b"\x00\x01\x02\xfe binary", "does not accept"),
        ("foto.jpg", "image/jpeg", b"GIF89a" + b"\x00" * 64, "does not accept image/gif"),
    ],
)
def test_files_whatsapp_would_refuse_are_400s(api, conversation, name, content_type, content, reason):
    upload = SimpleUploadedFile(name, content, content_type=content_type)
    response = api.post(url(conversation), {"file": upload}, format="multipart")
    assert response.status_code == 400 and response.json()["field"] == "file"
    assert reason in response.json()["detail"]
    assert not MessageAttachment.objects.exists() and not Message.objects.filter(direction="outbound").exists()


@pytest.mark.parametrize(
    "name,declared,content,message_type,stored_as",
    [
        ("exame.png", "application/pdf", PNG, "image", "image/png"),  # the bytes win over the label
        ("laudo.png", "image/png", PDF, "document", "application/pdf"),
        ("notas.txt", "text/plain", "Olá! Retorno às 14h.".encode(), "document", "text/plain"),
        ("notas.txt", "application/octet-stream", "Olá!".encode(), "document", "text/plain"),
    ],
)
def test_an_upload_is_stored_as_what_its_bytes_are(api, conversation, name, declared, content, message_type, stored_as):
    upload = SimpleUploadedFile(name, content, content_type=declared)
    response = api.post(url(conversation), {"file": upload}, format="multipart")
    assert response.status_code == 201, response.content
    assert response.json()["message_type"] == message_type
    assert MessageAttachment.objects.get().content_type == stored_as


@pytest.mark.parametrize(
    "body,field",
    [
        ({}, "content"),
        ({"content": "   "}, "content"),
        ({"content": 5}, "content"),
        ({"content": "x" * 4097}, "content"),
        ({"content": "Oi", "client_id": "not-a-uuid"}, "client_id"),
        ({"content": "Oi", "sender": 1}, "sender"),
    ],
)
def test_bad_sends_are_400s_naming_the_field(api, conversation, body, field):
    response = api.post(url(conversation), body, format="json")
    assert response.status_code == 400 and response.json()["field"] == field
    assert not Message.objects.filter(direction="outbound").exists()


def test_malformed_json_and_oversize_bodies_are_400s(api, conversation, settings):
    broken = api.post(url(conversation), '{"content": ', content_type="application/json")
    assert broken.status_code == 400 and broken.json()["field"] == "body"
    not_object = api.post(url(conversation), "[1, 2]", content_type="application/json")
    assert not_object.status_code == 400
    huge = api.post(
        url(conversation),
        json.dumps({"content": "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)}),
        content_type="application/json",
    )
    assert huge.status_code == 400 and huge.json()["field"] == "body"
    deep = api.post(url(conversation), "[" * 200_000 + "]" * 200_000, content_type="application/json")
    assert deep.status_code == 400 and deep.json()["field"] == "body"  # nested past the decoder: not a 500
    assert not Message.objects.filter(direction="outbound").exists()


@pytest.mark.parametrize("path", ["/api/auth/token/", "/api/auth/token/refresh/"])
def test_json_nested_past_the_decoder_is_a_400_at_the_login_too(client, path):
    response = client.post(path, "[" * 200_000 + "]" * 200_000, content_type="application/json")
    assert response.status_code == 400 and response.json()["code"] == "parse_error"


def test_read_marks_move_forward_only(api, conversation, member):
    messages = list(conversation.messages.order_by("id"))
    assert api.post(url(conversation, "read/"), {"message_id": messages[5].pk}, format="json").status_code == 204
    assert api.post(url(conversation, "read/"), {"message_id": messages[2].pk}, format="json").status_code == 204
    assert ReadMarker.objects.get(user=member).last_read_message_id == messages[5].pk
    row = api.get("/api/conversations/").json()["results"][0]
    assert row["unread_count"] == 4
    assert api.get(f"/api/conversations/{conversation.pk}/").json()["read_up_to"] == messages[5].pk


@pytest.mark.parametrize("message_id", [999999, "5", None])
def test_reading_an_unknown_or_malformed_message_id_is_a_400(api, conversation, message_id):
    response = api.post(url(conversation, "read/"), {"message_id": message_id}, format="json")
    assert response.status_code == 400 and response.json()["field"] == "message_id"
    assert not ReadMarker.objects.exists()
