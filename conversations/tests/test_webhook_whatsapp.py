"""The WhatsApp Cloud API webhook, fed Meta's payloads as Meta documents and signs them."""

import json
import urllib.error
import urllib.request
from datetime import UTC, datetime

import pytest
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from conftest import APP_SECRET, clean_env, whatsapp_payload
from conversations.actions.inbound import receive_inbound_message
from conversations.actions.messages import send_outbound_message, update_message_status
from conversations.models import Contact, Conversation, Message, PendingStatus, WhatsAppChannel
from conversations.webhooks.whatsapp import signature_of
from realtime.models import Event

AT = datetime.fromtimestamp(1750090702, tz=UTC)


def stored() -> dict:
    return {
        "messages": list(Message.objects.order_by("id").values("external_id", "status", "content")),
        "contacts": Contact.objects.count(),
        "conversations": Conversation.objects.count(),
        "events": Event.objects.count(),
    }


def queued(task_name: str) -> list:
    return [r.args_kwargs["args"] for r in DBTaskResult.objects.filter(task_path=f"conversations.tasks.{task_name}")]


# --- Verification handshake ---------------------------------------------------------------------------


def test_the_verification_handshake_echoes_the_challenge(client, whatsapp_channel):
    query = {"hub.mode": "subscribe", "hub.verify_token": "verifica-123", "hub.challenge": "1158201444"}
    response = client.get("/webhooks/whatsapp/", query)
    assert response.status_code == 200 and response.content == b"1158201444"


@pytest.mark.parametrize(
    "query",
    [
        {"hub.mode": "subscribe", "hub.verify_token": "errado"},
        {"hub.verify_token": "verifica-123"},
        {"hub.mode": "subscribe", "hub.verify_token": "é"},  # non-ASCII: compared as bytes, not a 500
    ],
)
def test_a_wrong_verify_token_is_refused(client, whatsapp_channel, query):
    assert client.get("/webhooks/whatsapp/", {**query, "hub.challenge": "x"}).status_code == 403


def test_a_verify_token_that_is_not_even_utf8_is_refused(client, whatsapp_channel):
    response = client.get("/webhooks/whatsapp/?hub.mode=subscribe&hub.verify_token=%FF%FE&hub.challenge=x")
    assert response.status_code == 403


# --- Messages of every type ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fixture,message_type,content,metadata",
    [
        ("text", "text", "Does it come in another color?", {"whatsapp_type": "text"}),
        ("image", "image", "Pedido do exame", {"media_id": "1003383421387256", "mime_type": "image/jpeg"}),
        ("video", "video", "Como está o joelho", {"media_id": "1002739855007373", "mime_type": "video/mp4"}),
        ("audio", "audio", "", {"media_id": "1003383421387257", "voice": True}),
        (
            "document",
            "document",
            "Resultado do hemograma",
            {"filename": "hemograma.pdf", "mime_type": "application/pdf"},
        ),
        ("sticker", "sticker", "", {"media_id": "1003383421387259", "animated": False}),
        (
            "location",
            "location",
            "MASP",
            {"latitude": -23.5614, "longitude": -46.6559, "address": "Av. Paulista, 1578, São Paulo"},
        ),
        ("contacts", "text", "Barbara Johnson +55 11 91234-5678", {"whatsapp_type": "contacts"}),
        (
            "interactive_button",
            "text",
            "Confirmar consulta",
            {"context": {"from": "15550783881", "id": "wamid.QUESTION"}},
        ),
        ("interactive_list", "text", "Quinta 14h", {"whatsapp_type": "interactive"}),
        ("button", "text", "Sim", {"button": {"payload": "SIM", "text": "Sim"}}),
        ("reaction", "text", "👍", {"reaction": {"message_id": "wamid.OUTBOUND1", "emoji": "👍"}}),
        ("unsupported", "unsupported", "", {"whatsapp_type": "unsupported"}),
    ],
)
def test_each_message_type_is_stored_as_sent(whatsapp_post, whatsapp_channel, fixture, message_type, content, metadata):
    response = whatsapp_post(fixture)
    assert response.status_code == 200 and response.json()["received"]["messages"] == 1
    message = Message.objects.get()
    assert (message.message_type, message.content, message.direction) == (message_type, content, "inbound")
    assert metadata.items() <= message.metadata.items()
    assert message.created_at == AT, "a message's time is WhatsApp's, not when it was processed"
    assert (
        message.conversation.contact.display_name == "Sheena Nelson"
        and message.conversation.contact.phone == "5511987654321"
    )
    assert message.clinic == whatsapp_channel.clinic


def test_an_unsupported_message_keeps_its_raw_json(whatsapp_post, whatsapp_channel):
    whatsapp_post("unsupported")
    assert Message.objects.get().metadata["raw"]["errors"][0]["code"] == 131051


@pytest.mark.parametrize("fixture", ["image", "video", "audio", "document", "sticker"])
def test_media_is_shown_at_once_and_its_download_queued(whatsapp_post, whatsapp_channel, fixture):
    whatsapp_post(fixture)
    message = Message.objects.get()
    assert message.metadata["media_status"] == "pending"
    assert queued("download_inbound_media") == [[message.pk]]
    assert Event.objects.filter(type="message:new").count() == 1


def test_several_entries_changes_and_messages_are_all_stored(whatsapp_post, whatsapp_channel):
    response = whatsapp_post("batch")
    assert response.json()["received"]["messages"] == 4
    assert sorted(Message.objects.values_list("external_id", "content")) == [
        ("wamid.B1", "um"),
        ("wamid.B2", "dois"),
        ("wamid.B3", "três"),
        ("wamid.B4", "quatro"),
    ]
    assert dict(Contact.objects.values_list("phone", "profile_name")) == {
        "5511911110001": "Ana",
        "5511922220002": "Bruno",
        "5521933330003": "Carla",
    }
    assert Conversation.objects.count() == 3


@pytest.mark.parametrize("fixture", ["text", "image", "batch", "contacts"])
def test_a_replayed_notification_changes_nothing(whatsapp_post, whatsapp_channel, fixture):
    whatsapp_post(fixture)
    before, tasks_before = stored(), DBTaskResult.objects.count()
    assert whatsapp_post(fixture).status_code == 200
    assert stored() == before and DBTaskResult.objects.count() == tasks_before


# --- Statuses -----------------------------------------------------------------------------------------


@pytest.fixture
def outbound(clinic, member, whatsapp_channel):
    conversation = receive_inbound_message(clinic=clinic, phone="5511987654321", content="Oi").conversation
    message = send_outbound_message(conversation=conversation, sender=member, content="Olá!").message
    update_message_status(message=message, status="sent", external_id="wamid.OUTBOUND1")
    return message


def status_of(message) -> str:
    message.refresh_from_db()
    return message.status


def test_statuses_move_the_message_forward(whatsapp_post, outbound):
    whatsapp_post("status_delivered")
    assert status_of(outbound) == "delivered"
    whatsapp_post("status_read")
    assert status_of(outbound) == "read"
    assert outbound.status_changed_at == datetime.fromtimestamp(1750090860, tz=UTC)


def test_a_late_delivered_never_undoes_read_and_duplicates_change_nothing(whatsapp_post, outbound):
    whatsapp_post("status_read")
    events = Event.objects.count()
    for fixture in ("status_delivered", "status_sent", "status_read", "status_failed"):
        assert whatsapp_post(fixture).status_code == 200
    assert status_of(outbound) == "read" and Event.objects.count() == events


def test_failed_records_metas_reason(whatsapp_post, outbound):
    whatsapp_post("status_failed")
    assert status_of(outbound) == "failed"
    assert outbound.error.startswith(
        "(#131047) Re-engagement message: Message failed to send because more than 24 hours"
    )


def test_a_status_before_its_message_is_known_is_kept_and_applied_later(
    whatsapp_post, clinic, member, whatsapp_channel
):
    whatsapp_post("status_delivered")
    assert PendingStatus.objects.get().external_id == "wamid.OUTBOUND1"
    conversation = receive_inbound_message(clinic=clinic, phone="5511987654321", content="Oi").conversation
    message = send_outbound_message(conversation=conversation, sender=member, content="Olá!").message
    update_message_status(message=message, status="sent", external_id="wamid.OUTBOUND1")
    assert status_of(message) == "delivered" and not PendingStatus.objects.exists()


# --- Refusals -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "signature",
    ["sha256=" + "0" * 64, "sha1=abc", "", "sha256=" + "a" * 10],
)
def test_a_bad_signature_is_a_403_and_changes_nothing(whatsapp_post, whatsapp_channel, signature):
    response = whatsapp_post("text", secret=None, signature=signature or None)
    assert response.status_code == 403 and response.json()["code"] == "bad_signature"
    assert not Message.objects.exists() and not Contact.objects.exists()


def test_a_missing_signature_is_a_403(whatsapp_post, whatsapp_channel):
    assert whatsapp_post("text", secret=None).status_code == 403


def test_another_apps_secret_cannot_write_to_this_number(whatsapp_post, whatsapp_channel, other_clinic):
    WhatsAppChannel.objects.create(
        clinic=other_clinic,
        phone_number_id="999",
        access_token="t",
        app_secret="segredo-de-outro-app",
        verify_token="v",
    )
    response = whatsapp_post("text", secret="segredo-de-outro-app")
    assert response.status_code == 403 and response.json()["code"] == "bad_signature"
    assert not Message.objects.exists()


def test_a_number_removed_here_that_meta_still_reports_on_is_acknowledged_by_its_account(
    whatsapp_post, whatsapp_channel, other_clinic
):
    """Several apps: a notification about a number support removed (its app still subscribed) is checked
    against its Business Account's app and acknowledged, so Meta does not retry it for days."""
    whatsapp_channel.business_account_id = "102290129340398"  # the fixture's entry id
    whatsapp_channel.save(update_fields=["business_account_id"])
    WhatsAppChannel.objects.create(
        clinic=other_clinic,
        phone_number_id="999",
        access_token="t",
        app_secret="segredo-de-outro-app",
        verify_token="v",
    )
    payload = whatsapp_payload("text")
    payload["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] = "000000000"
    response = whatsapp_post(payload)
    assert response.status_code == 200 and response.json()["received"]["ignored"] == 1
    assert whatsapp_post(payload, secret="segredo-de-outro-app").status_code == 403
    assert not Message.objects.exists()


def test_an_unknown_number_is_acknowledged_and_nothing_stored(whatsapp_post, whatsapp_channel):
    payload = whatsapp_payload("text")
    payload["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] = "000000000"
    response = whatsapp_post(payload)
    assert response.status_code == 200 and response.json()["received"] == {"messages": 0, "statuses": 0, "ignored": 1}
    assert not Message.objects.exists()


@pytest.mark.parametrize("body", [b"{not json", b"[]", b'{"entry": "x"}', "ação".encode("latin-1")])
def test_malformed_bodies_are_400s_and_store_nothing(whatsapp_post, whatsapp_channel, body):
    response = whatsapp_post(body)
    assert response.status_code == 400 and response.json()["field"] == "body"
    assert not Message.objects.exists()


def test_a_message_without_an_id_inside_a_good_notification_is_skipped_not_fatal(whatsapp_post, whatsapp_channel):
    payload = whatsapp_payload("batch")
    del payload["entry"][0]["changes"][0]["value"]["messages"][0]["id"]
    assert whatsapp_post(payload).json()["received"]["messages"] == 3


@pytest.mark.parametrize("timestamp", ["99999999999999999999", str(-(10**30)), "amanhã"])
def test_a_status_with_an_unreadable_timestamp_is_skipped_and_the_batch_acknowledged(
    whatsapp_post, whatsapp_channel, timestamp
):
    payload = whatsapp_payload("status_delivered")
    payload["entry"][0]["changes"][0]["value"]["statuses"][0]["timestamp"] = timestamp
    response = whatsapp_post(payload)
    assert response.status_code == 200  # never a 500: Meta would retry the whole batch
    assert not PendingStatus.objects.exists()


@pytest.mark.parametrize("timestamp", [None, "amanhã", "99999999999999999999", -(10**30)])
def test_a_message_with_an_unreadable_timestamp_is_kept_at_the_time_it_arrived(
    whatsapp_post, whatsapp_channel, timestamp
):
    payload = whatsapp_payload("text")
    message = payload["entry"][0]["changes"][0]["value"]["messages"][0]
    if timestamp is None:
        del message["timestamp"]
    else:
        message["timestamp"] = timestamp
    before = timezone.now()
    response = whatsapp_post(payload)
    assert response.status_code == 200 and response.json()["received"]["messages"] == 1
    stored_message = Message.objects.get()
    assert stored_message.created_at >= before and stored_message.content == "Does it come in another color?"
    assert "timestamp_unreadable" in stored_message.metadata


def test_other_methods_are_refused(client, whatsapp_channel):
    assert client.put("/webhooks/whatsapp/").status_code == 405


@pytest.mark.faults
def test_with_the_database_down_the_webhook_answers_503_so_meta_retries(serve):
    server = serve(clean_env(DATABASE_URL="postgres://postgres@127.0.0.1:1/taskmed", DB_POOL_TIMEOUT="2"))
    body = json.dumps(whatsapp_payload("text")).encode()
    request = urllib.request.Request(
        f"http://{server}/webhooks/whatsapp/",
        data=body,
        headers={"Content-Type": "application/json", "X-Hub-Signature-256": signature_of(body, APP_SECRET)},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 503
    assert json.loads(refused.value.read())["code"] == "unavailable"


@pytest.mark.faults
def test_with_the_database_down_the_api_answers_503_not_500(serve, member):
    from realtime.tests.test_consumer import access_token

    server = serve(clean_env(DATABASE_URL="postgres://postgres@127.0.0.1:1/taskmed", DB_POOL_TIMEOUT="2"))
    request = urllib.request.Request(
        f"http://{server}/api/conversations/", headers={"Authorization": f"Bearer {access_token(member)}"}
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 503 and refused.value.headers["Retry-After"] == "5"
    assert json.loads(refused.value.read())["code"] == "unavailable"


def test_a_signed_notification_nested_past_the_decoder_is_a_400(whatsapp_post, whatsapp_channel):
    response = whatsapp_post(b"[" * 200_000 + b"]" * 200_000)
    assert response.status_code == 400 and not Message.objects.exists()


def test_a_cursor_nested_past_the_decoder_is_a_400(jwt_client, member):
    import base64

    cursor = base64.urlsafe_b64encode(b"[" * 40_000 + b"]" * 40_000).decode().rstrip("=")
    response = jwt_client(member).get(f"/api/conversations/?cursor={cursor}")
    assert response.status_code == 400
