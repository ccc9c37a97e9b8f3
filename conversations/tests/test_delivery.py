"""Delivering outbound messages with the real task worker: the simulator, and the WhatsApp Cloud API client
against Meta's HTTP mocked at the boundary (respx), with retries, refusals and the never-twice guarantee."""

import json
import threading
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import respx
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from conftest import whatsapp_payload
from conversations.actions.attempts import begin_delivery_attempt, finish_delivery_attempt
from conversations.actions.inbound import receive_inbound_message
from conversations.actions.messages import mark_read, send_outbound_message
from conversations.actions.support import remove_channel
from conversations.models import Contact, DeliveryAttempt, Message, MessageAttachment, PendingStatus, WhatsAppChannel
from conversations.providers import provider_for
from conversations.tasks import deliver_message
from realtime.models import Event

pytestmark = pytest.mark.django_db(transaction=True)  # tasks are committed with their message
PNID = "106540352242922"


def run_worker() -> None:
    call_command("db_worker", "--batch", "--no-reload", "--no-startup-delay", "--queue-name", "*", verbosity=0)


@pytest.fixture(autouse=True)
def quick_retries(settings):
    settings.DELIVERY_RETRY_BASE_SECONDS = 0
    settings.DELIVERY_MAX_ATTEMPTS = 3
    settings.SIMULATOR_DELIVERED_AFTER_SECONDS = 0
    settings.SIMULATOR_READ_AFTER_SECONDS = 0


@pytest.fixture
def conversation(clinic):
    return receive_inbound_message(
        clinic=clinic, phone="5511987654321", content="Oi", external_id="wamid.IN1"
    ).conversation


class Graph:
    """Meta's Graph API at the HTTP boundary: routes by path under the configured API URL, or by full URL."""

    def __init__(self, router: respx.MockRouter, base: str):
        self.router, self.base = router, base

    def get(self, path: str):
        return self.router.get(path if path.startswith("https://") else self.base + path)

    def post(self, path: str):
        return self.router.post(self.base + path)


@pytest.fixture
def graph(settings, whatsapp_channel):
    with respx.mock(assert_all_called=False) as router:
        yield Graph(router, settings.WHATSAPP_GRAPH_URL)


def send(conversation, member, content="Olá, Maria!", **fields) -> Message:
    return send_outbound_message(conversation=conversation, sender=member, content=content, **fields).message


def accepted(wamid: str = "wamid.OUT1") -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "messaging_product": "whatsapp",
            "contacts": [{"input": "5511987654321", "wa_id": "5511987654321"}],
            "messages": [{"id": wamid}],
        },
    )


def meta_error(status: int, code: int, message: str) -> httpx.Response:
    return httpx.Response(
        status,
        json={
            "error": {
                "message": message,
                "type": "OAuthException",
                "code": code,
                "fbtrace_id": "Az8or2yhqkZfEZ-_4Qn_Bam",
            }
        },
    )


def reloaded(message: Message) -> Message:
    return Message.objects.get(pk=message.pk)


# --- The simulator --------------------------------------------------------------------------------------


def test_the_simulator_takes_a_message_through_sent_delivered_read(conversation, member, simulated_number):
    message = send(conversation, member)
    assert provider_for(conversation.clinic_id).name == "simulator"
    run_worker()
    message = reloaded(message)
    assert message.status == "read" and message.external_id.startswith("sim.")
    statuses = [e.data["status"] for e in Event.objects.filter(type="message:status").order_by("seq")]
    assert statuses == ["sent", "delivered", "read"]


def test_a_simulated_demo_channel_still_uses_the_simulator(conversation, member, clinic):
    WhatsAppChannel.objects.create(
        clinic=clinic, phone_number_id="demo", access_token="x", app_secret="s", verify_token="v", simulated=True
    )
    message = send(conversation, member)
    run_worker()
    assert reloaded(message).status == "read"


# --- No number: nothing is sent and no tick is ever shown -----------------------------------------------


def test_a_clinic_without_a_whatsapp_number_refuses_a_reply_before_storing_it(
    conversation, member, jwt_client, whatsapp_channel, django_user_model
):
    support = django_user_model.objects.create_superuser("suporte", password="senha-de-teste-123")
    remove_channel(whatsapp_channel, actor=support)  # the clinic's only number
    stored, logged = Message.objects.count(), Event.objects.count()

    refused = jwt_client(member).post(
        f"/api/conversations/{conversation.pk}/messages/", {"content": "Olá, Maria!"}, format="json"
    )
    assert refused.status_code == 409 and refused.json()["code"] == "no_whatsapp_number"
    assert "Nenhum número de WhatsApp conectado" in refused.json()["detail"]
    assert (Message.objects.count(), Event.objects.count()) == (stored, logged), "nothing stored, nothing told"


def test_a_reply_queued_before_the_only_number_was_removed_fails_with_the_reason_and_never_a_tick(
    graph, conversation, member, whatsapp_channel, django_user_model
):
    route = graph.post(f"/{PNID}/messages").mock(return_value=accepted())
    message = send(conversation, member)
    support = django_user_model.objects.create_superuser("suporte", password="senha-de-teste-123")
    remove_channel(whatsapp_channel, actor=support)
    run_worker()
    message = reloaded(message)
    assert not route.called
    assert message.status == "failed" and "Nenhum número de WhatsApp conectado" in message.error
    told = [e.data["status"] for e in Event.objects.filter(type="message:status").order_by("seq")]
    assert told == ["failed"], "never sent, delivered or read"


# --- The WhatsApp Cloud API -----------------------------------------------------------------------------


def test_a_text_goes_to_the_graph_api_and_is_marked_sent(graph, conversation, member):
    route = graph.post(f"/{PNID}/messages").mock(return_value=accepted())
    message = send(conversation, member)
    run_worker()
    message = reloaded(message)
    assert (message.status, message.external_id) == ("sent", "wamid.OUT1")
    request = route.calls.last.request
    assert request.headers["Authorization"] == "Bearer EAAG-test-token"
    assert json.loads(request.content) == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "5511987654321",
        "type": "text",
        "text": {"body": "Olá, Maria!", "preview_url": False},
        "biz_opaque_callback_data": f"taskmed:message:{message.pk}",  # WhatsApp repeats it in each status
    }


def test_a_patient_without_a_phone_is_answered_at_their_whatsapp_user_id(graph, clinic, member):
    conversation = receive_inbound_message(
        clinic=clinic, whatsapp_user_id="BR.13491208655302741918", content="Oi", external_id="wamid.IN1"
    ).conversation
    route = graph.post(f"/{PNID}/messages").mock(
        return_value=httpx.Response(
            200,
            json={
                "messaging_product": "whatsapp",
                "contacts": [{"input": "BR.13491208655302741918", "user_id": "BR.13491208655302741918"}],
                "messages": [{"id": "wamid.OUT1"}],
            },
        )
    )
    message = send(conversation, member)
    run_worker()
    assert (reloaded(message).status, reloaded(message).external_id) == ("sent", "wamid.OUT1")
    body = json.loads(route.calls.last.request.content)
    assert body["recipient"] == "BR.13491208655302741918" and "to" not in body


def test_the_simulator_answers_a_patient_known_by_user_id_alone(clinic, member, simulated_number):
    conversation = receive_inbound_message(
        clinic=clinic, whatsapp_user_id="BR.13491208655302741918", content="Oi"
    ).conversation
    message = send(conversation, member)
    run_worker()
    assert reloaded(message).status == "read"


def test_a_patient_with_no_address_left_fails_with_the_reason_instead_of_a_crash(graph, conversation, member):
    route = graph.post(f"/{PNID}/messages").mock(return_value=accepted())
    message = send(conversation, member)
    Contact.objects.filter(pk=conversation.contact_id).update(phone="")  # e.g. erased meanwhile
    run_worker()
    message = reloaded(message)
    assert message.status == "failed" and "neither a phone number nor a WhatsApp user id" in message.error
    assert not route.called


def test_then_metas_statuses_take_it_to_read(graph, whatsapp_post, conversation, member):
    graph.post(f"/{PNID}/messages").mock(return_value=accepted("wamid.OUTBOUND1"))
    message = send(conversation, member)
    run_worker()
    whatsapp_post("status_delivered")
    whatsapp_post("status_read")
    assert reloaded(message).status == "read"


def test_a_status_ahead_of_its_message_is_kept_once_and_applied_when_the_id_is_learnt(
    graph, whatsapp_post, conversation, member
):
    graph.post(f"/{PNID}/messages").mock(return_value=accepted("wamid.OUTBOUND1"))
    message = send(conversation, member)
    whatsapp_post("status_delivered")  # Meta is faster than the delivery's own write
    whatsapp_post("status_delivered")  # and says it twice
    assert PendingStatus.objects.count() == 1
    run_worker()
    assert reloaded(message).status == "delivered" and not PendingStatus.objects.exists()


def test_the_database_itself_keeps_a_pending_status_once(clinic):
    """Two webhooks racing past the lookup (`get_or_create` is two statements): the constraint decides."""
    from django.db import IntegrityError, transaction

    kept = {"clinic": clinic, "external_id": "wamid.EARLY", "status": "delivered", "happened_at": timezone.now()}
    PendingStatus.objects.create(**kept)
    with pytest.raises(IntegrityError), transaction.atomic():
        PendingStatus.objects.create(**kept)
    PendingStatus.objects.create(**{**kept, "status": "read"})  # another status of the same message is its own
    assert PendingStatus.objects.count() == 2


def test_statuses_whose_message_never_comes_are_dropped_after_a_while(
    whatsapp_post, whatsapp_channel, clinic, settings
):
    settings.PENDING_STATUS_DAYS = 7
    PendingStatus.objects.create(
        clinic=clinic,
        external_id="wamid.LOST",
        status="delivered",
        happened_at=timezone.now() - timedelta(days=8),
        received_at=timezone.now() - timedelta(days=8),
    )
    whatsapp_post("status_delivered")
    assert list(PendingStatus.objects.values_list("external_id", flat=True)) == ["wamid.OUTBOUND1"]


@pytest.mark.postgres
def test_a_status_arriving_while_the_delivery_commits_is_not_lost(
    graph, whatsapp_post, conversation, member, monkeypatch
):
    """The delivery has written Meta's id and looked for early statuses, but not committed, when Meta's
    `delivered` arrives: that status must still reach the message."""
    from conversations.actions import messages

    graph.post(f"/{PNID}/messages").mock(return_value=accepted("wamid.OUTBOUND1"))
    message = send(conversation, member)
    looked, go = threading.Event(), threading.Event()
    original = messages.apply_pending_statuses

    def then_pause(message):
        applied = original(message)
        looked.set()
        go.wait(10)
        return applied

    monkeypatch.setattr(messages, "apply_pending_statuses", then_pause)
    attempt = begin_delivery_attempt(message_id=message.pk, provider="whatsapp_cloud")

    def deliver():
        try:
            finish_delivery_attempt(attempt=attempt, outcome="sent", external_id="wamid.OUTBOUND1")
        finally:
            connection.close()

    delivery = threading.Thread(target=deliver)
    delivery.start()
    assert looked.wait(10)
    status = threading.Thread(target=lambda: (whatsapp_post("status_delivered"), connection.close()))
    status.start()
    status.join(1.0)  # with the fix it waits for the delivery's commit; without, it is already done
    go.set()
    delivery.join(10)
    status.join(10)
    assert reloaded(message).status == "delivered"


@pytest.mark.parametrize("way", ["first message", "known patient", "known patient, media"])
def test_a_clinic_with_two_numbers_answers_from_the_one_the_patient_wrote_to(
    graph, whatsapp_post, whatsapp_channel, clinic, member, way
):
    second = WhatsAppChannel.objects.create(
        clinic=clinic,
        phone_number_id="200000000000002",
        display_phone_number="+55 11 3000-2000",
        access_token="EAAG-second-number",
        app_secret=whatsapp_channel.app_secret,  # one Meta app, two numbers
        verify_token="segundo",
    )
    from_first = graph.post(f"/{PNID}/messages").mock(return_value=accepted("wamid.FROM1"))
    from_second = graph.post(f"/{second.phone_number_id}/messages").mock(return_value=accepted("wamid.FROM2"))

    def patient_writes(number_id: str, wamid: str, fixture: str = "text"):
        payload = whatsapp_payload(fixture)
        value = payload["entry"][0]["changes"][0]["value"]
        value["metadata"]["phone_number_id"] = number_id
        value["messages"][0]["id"] = wamid
        value["messages"][0]["timestamp"] = str(int(time.time()))  # now: WhatsApp's window is open
        assert whatsapp_post(payload).status_code == 200
        return Message.objects.get(external_id=wamid).conversation

    if way != "first message":
        patient_writes(PNID, "wamid.EARLIER")  # known, on the first number
    conversation = patient_writes(second.phone_number_id, "wamid.NOW", "image" if "media" in way else "text")
    send(conversation, member, "Respondendo pelo número em que você escreveu")
    run_worker()
    assert from_second.call_count == 1 and not from_first.called
    sent = json.loads(from_second.calls.last.request.content)
    assert sent["text"]["body"] == "Respondendo pelo número em que você escreveu"
    assert from_second.calls.last.request.headers["Authorization"] == "Bearer EAAG-second-number"

    patient_writes(PNID, "wamid.LATER")  # back on the first number: replies follow
    send(conversation, member, "E agora pelo primeiro")
    run_worker()
    assert from_first.call_count == 1 and from_second.call_count == 1


def test_a_photo_is_uploaded_then_sent_with_its_caption(graph, conversation, member):
    upload = graph.post(f"/{PNID}/media").mock(return_value=httpx.Response(200, json={"id": "4490709327384033"}))
    route = graph.post(f"/{PNID}/messages").mock(return_value=accepted())
    photo = SimpleUploadedFile("receita.png", b"\x89PNG" + b"0" * 32, content_type="image/png")
    message = send(conversation, member, content="Sua receita", attachment=photo)
    run_worker()
    assert reloaded(message).status == "sent" and upload.call_count == 1
    assert b'name="type"\r\n\r\nimage/png' in upload.calls.last.request.content
    assert json.loads(route.calls.last.request.content)["image"] == {"id": "4490709327384033", "caption": "Sua receita"}


def test_a_permanent_refusal_fails_at_once_with_metas_reason(graph, conversation, member):
    route = graph.post(f"/{PNID}/messages").mock(return_value=meta_error(400, 131047, "Re-engagement message"))
    message = send(conversation, member)
    run_worker()
    message = reloaded(message)
    assert message.status == "failed" and message.error == "(#131047) Re-engagement message"
    assert route.call_count == 1


@pytest.mark.parametrize(
    "first",
    [
        meta_error(429, 130429, "Rate limit hit"),
        httpx.ConnectError("refused"),
        httpx.ConnectTimeout("no connection"),
    ],
)
def test_failures_before_whatsapp_took_the_request_are_retried(graph, conversation, member, first):
    route = graph.post(f"/{PNID}/messages").mock(side_effect=[first, accepted()])
    message = send(conversation, member)
    run_worker()
    assert reloaded(message).status == "sent" and route.call_count == 2
    outcomes = list(DeliveryAttempt.objects.order_by("number").values_list("outcome", flat=True))
    assert outcomes == ["not_sent", "sent"]


def test_retries_stop_at_the_limit_with_the_reason(graph, conversation, member):
    route = graph.post(f"/{PNID}/messages").mock(return_value=meta_error(429, 130429, "Rate limit hit"))
    message = send(conversation, member)
    run_worker()
    message = reloaded(message)
    assert route.call_count == 3 and message.status == "failed"
    assert message.error.startswith("Gave up after 3 attempts: WhatsApp is busy or failing: (#130429) Rate limit")


def test_retry_delays_grow_exponentially_with_jitter(settings):
    from conversations.actions.attempts import retry_delay

    settings.DELIVERY_RETRY_BASE_SECONDS = 4
    for attempt, ceiling in [(1, 4), (2, 8), (3, 16), (5, 64)]:
        delays = {retry_delay(attempt).total_seconds() for _ in range(20)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays) and len(delays) > 1


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_a_5xx_after_the_request_was_written_is_unknown_and_never_sent_again(graph, conversation, member, status):
    """A 502 or 504 from Meta's edge may come after the message went out: the patient must not get it twice."""
    route = graph.post(f"/{PNID}/messages").mock(return_value=meta_error(status, 1, "An unknown error occurred"))
    message = send(conversation, member)
    run_worker()
    run_worker()
    message = reloaded(message)
    assert route.call_count == 1, "never sent again on its own"
    assert message.status == "unknown" and "may have been delivered" in message.error
    assert list(DeliveryAttempt.objects.values_list("outcome", flat=True)) == ["unknown"]
    told = [e.data["status"] for e in Event.objects.filter(type="message:status").order_by("seq")]
    assert told == ["unknown"], "screens show it as unknown, never as sent"


def status_for_our_message(message: Message, status: str, wamid: str = "wamid.SETTLED") -> dict:
    """What WhatsApp reports later of the message it had after all: our callback data comes back with it."""
    payload = whatsapp_payload("status_delivered")
    report = payload["entry"][0]["changes"][0]["value"]["statuses"][0]
    report.update(id=wamid, status=status, biz_opaque_callback_data=f"taskmed:message:{message.pk}")
    return payload


def test_a_later_status_from_whatsapp_settles_an_unknown_message(graph, whatsapp_post, conversation, member):
    graph.post(f"/{PNID}/messages").mock(return_value=meta_error(504, 1, "Gateway timeout"))
    message = send(conversation, member)
    run_worker()
    assert reloaded(message).status == "unknown"

    assert whatsapp_post(status_for_our_message(message, "delivered")).status_code == 200
    message = reloaded(message)
    assert (message.status, message.external_id, message.error) == ("delivered", "wamid.SETTLED", "")
    whatsapp_post(status_for_our_message(message, "read"))  # later ones find it by its id now
    assert reloaded(message).status == "read" and not PendingStatus.objects.exists()


def test_a_later_failure_settles_an_unknown_message_as_failed(graph, whatsapp_post, conversation, member):
    graph.post(f"/{PNID}/messages").mock(side_effect=httpx.ReadTimeout("no answer"))
    message = send(conversation, member)
    run_worker()
    payload = status_for_our_message(message, "failed")
    payload["entry"][0]["changes"][0]["value"]["statuses"][0]["errors"] = [
        {"code": 131026, "title": "Message undeliverable"}
    ]
    whatsapp_post(payload)
    assert (reloaded(message).status, reloaded(message).error) == ("failed", "(#131026) Message undeliverable")


def test_callback_data_naming_another_clinics_message_settles_nothing(
    graph, whatsapp_post, conversation, member, other_clinic, make_member, simulated_number
):
    """A status routes to the clinic of the number it came to: a message of another clinic is not touched."""
    theirs = receive_inbound_message(clinic=other_clinic, phone="5511911112222", content="Oi").conversation
    WhatsAppChannel.objects.create(
        clinic=other_clinic, phone_number_id="sim-b", access_token="x", app_secret="y", verify_token="z", simulated=True
    )
    graph.post(f"/{PNID}/messages").mock(return_value=meta_error(504, 1, "Gateway timeout"))
    their_message = send(theirs, make_member(other_clinic))
    Message.objects.filter(pk=their_message.pk).update(status="unknown")
    whatsapp_post(status_for_our_message(their_message, "delivered"))  # to this clinic's number
    assert reloaded(their_message).status == "unknown" and reloaded(their_message).external_id is None


def test_staff_can_resend_an_unknown_message_through_the_api(graph, conversation, member, jwt_client):
    route = graph.post(f"/{PNID}/messages").mock(side_effect=[meta_error(502, 1, "Bad gateway"), accepted()])
    message = send(conversation, member)
    run_worker()
    url = f"/api/conversations/{conversation.pk}/messages/{message.pk}/resend/"
    resent = jwt_client(member).post(url, {"client_id": "6f7c1b7e-2c1d-4b7a-9a55-1a2b3c4d5e6f"}, format="json")
    assert resent.status_code == 201, resent.content
    run_worker()
    assert route.call_count == 2 and Message.objects.get(pk=resent.json()["id"]).status == "sent"
    assert reloaded(message).status == "unknown" and reloaded(message).metadata["resent_as"] == resent.json()["id"]


def test_a_timeout_after_sending_is_never_retried(graph, conversation, member):
    route = graph.post(f"/{PNID}/messages").mock(side_effect=httpx.ReadTimeout("no answer"))
    message = send(conversation, member)
    run_worker()
    message = reloaded(message)
    assert route.call_count == 1 and message.status == "unknown"
    assert "may have been delivered" in message.error


def test_a_worker_killed_between_metas_answer_and_the_write_never_sends_twice(graph, conversation, member):
    """The state a kill -9 leaves: the attempt committed as in flight, Meta called, no outcome written."""
    route = graph.post(f"/{PNID}/messages").mock(return_value=accepted())
    message = send(conversation, member)
    attempt = begin_delivery_attempt(message_id=message.pk, provider="whatsapp_cloud")
    provider_for(conversation.clinic_id).send(reloaded(message))  # Meta has it; then the process dies
    assert route.call_count == 1 and attempt.outcome == "in_flight"
    DeliveryAttempt.objects.update(started_at=timezone.now() - timedelta(minutes=5))  # longer than a send takes

    run_worker()  # the queued task runs again, as after a restart
    call_command("recover_deliveries", "--older-than", "0", "--yes", verbosity=0)
    run_worker()

    message = reloaded(message)
    assert route.call_count == 1, "the patient must not get the message twice"
    assert message.status == "unknown" and "interrupted after WhatsApp was called" in message.error
    assert DeliveryAttempt.objects.get().outcome == "unknown"


def test_recover_deliveries_leaves_alone_a_send_that_is_still_running(graph, conversation, member, capsys):
    """A worker is in the middle of the call to Meta (its task running, its attempt in flight, both recent):
    recovery must not fail the message under it, and the send's own answer decides."""
    from django_tasks_db.models import DBTaskResult

    graph.post(f"/{PNID}/messages").mock(return_value=accepted())
    message = send(conversation, member)
    DBTaskResult.objects.update(status="RUNNING", started_at=timezone.now())  # what a worker claiming it does
    attempt = begin_delivery_attempt(message_id=message.pk, provider="whatsapp_cloud")

    call_command("recover_deliveries", "--older-than", "0", "--yes")
    assert "No stalled deliveries" in capsys.readouterr().out
    deliver_message.enqueue(message.pk)  # even a second copy of its task, run meanwhile, changes nothing
    run_worker()
    assert reloaded(message).status == "pending" and DeliveryAttempt.objects.get().outcome == "in_flight"

    finish_delivery_attempt(attempt=attempt, outcome="sent", external_id="wamid.OUT1")  # Meta answered
    assert reloaded(message).status == "sent"


def test_recover_deliveries_requeues_a_message_whose_task_was_lost(graph, conversation, member, capsys):
    graph.post(f"/{PNID}/messages").mock(return_value=accepted())
    message = send(conversation, member)
    from django_tasks_db.models import DBTaskResult

    DBTaskResult.objects.all().delete()  # the worker died holding it
    call_command("recover_deliveries", "--older-than", "0")
    assert "Dry run" in capsys.readouterr().out and reloaded(message).status == "pending"
    call_command("recover_deliveries", "--older-than", "0", "--yes")
    run_worker()
    assert reloaded(message).status == "sent"


JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01" + b"\x00" * 32

# --- Inbound media and read receipts --------------------------------------------------------------------


def test_inbound_media_is_downloaded_and_every_screen_told(graph, whatsapp_post, whatsapp_channel):
    graph.get("/1003383421387256").mock(
        return_value=httpx.Response(
            200,
            json={
                "url": "https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=1",
                "mime_type": "image/jpeg",
                "file_size": 5,
                "id": "1003383421387256",
            },
        )
    )
    download = graph.get("https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=1").mock(
        return_value=httpx.Response(200, content=JPEG)
    )
    whatsapp_post("image")
    run_worker()
    message = Message.objects.get()
    attachment = message.attachments.get()
    assert attachment.file.read() == JPEG and attachment.content_type == "image/jpeg"
    assert download.calls.last.request.headers["Authorization"] == "Bearer EAAG-test-token"
    assert message.metadata["media_status"] == "downloaded"
    updated = Event.objects.get(type="message:updated")
    assert updated.data["message"]["attachments"][0]["file_name"] == attachment.file_name


def test_inbound_media_is_typed_by_its_bytes_not_by_what_the_download_declares(
    graph, whatsapp_post, whatsapp_channel, client, member
):
    """A page of script declared as a photo is kept (the patient sent something), typed by what it is, and
    so offered only as a download, never shown inline."""
    graph.get("/1003383421387256").mock(
        return_value=httpx.Response(200, json={"url": "https://lookaside.fbsbx.com/m?mid=2", "mime_type": "image/jpeg"})
    )
    page = b"<html><script>alert(document.cookie)</script></html>"
    graph.get("https://lookaside.fbsbx.com/m?mid=2").mock(
        return_value=httpx.Response(200, content=page, headers={"Content-Type": "image/jpeg"})
    )
    whatsapp_post("image")
    run_worker()
    attachment = Message.objects.get().attachments.get()
    assert attachment.file.read() == page and attachment.content_type == "application/octet-stream"
    client.force_login(member)
    client.get("/inbox/")  # the clinic becomes the session's
    served = client.get(f"/media/attachments/{attachment.pk}/")
    assert served.status_code == 200 and served["Content-Type"] == "application/octet-stream"
    assert served["Content-Disposition"].startswith("attachment") and served["X-Content-Type-Options"] == "nosniff"


PDF = b"%PDF-1.4\n" + b"0" * 64


@pytest.mark.parametrize(
    "given,stored",
    [
        ("../../etc/passwd", "passwd"),
        ("exames/2026/hemograma.pdf", "hemograma.pdf"),
        ("..\\..\\win.ini", "win.ini"),
        ("laudo\x00\x1b[2J.pdf", "laudo[2J.pdf"),
        ("..", None),
        ("/", None),
        ("a" * 300 + ".pdf", "a" * 187 + ".pdf"),
    ],
)
def test_a_patients_file_name_is_stored_under_a_safe_name(
    graph, whatsapp_post, whatsapp_channel, settings, given, stored
):
    """A name with folders, `..` or control characters made the download fail for ever (the message stayed
    "downloading"): it is kept under a safe name, inside the media folder."""
    graph.get("/1003383421387256").mock(
        return_value=httpx.Response(
            200, json={"url": "https://lookaside.fbsbx.com/m?mid=3", "mime_type": "application/pdf"}
        )
    )
    graph.get("https://lookaside.fbsbx.com/m?mid=3").mock(return_value=httpx.Response(200, content=PDF))
    payload = whatsapp_payload("document")
    message = payload["entry"][0]["changes"][0]["value"]["messages"][0]
    message["document"] |= {"id": "1003383421387256", "filename": given}
    assert whatsapp_post(payload).status_code == 200
    run_worker()
    kept = Message.objects.get()
    assert kept.metadata["media_status"] == "downloaded", kept.metadata
    attachment = kept.attachments.get()
    assert attachment.file_name == (stored or f"document-{kept.pk}.pdf")
    path = Path(attachment.file.path).resolve()
    assert path.is_relative_to(Path(settings.MEDIA_ROOT).resolve()) and path.read_bytes() == PDF
    assert "/" not in attachment.file_name and not any(ord(c) < 32 for c in attachment.file_name)


def test_a_file_the_storage_refuses_marks_the_media_failed_with_the_reason(
    graph, whatsapp_post, whatsapp_channel, monkeypatch
):
    from django.core.exceptions import SuspiciousFileOperation

    from conversations.storage import SafeFileSystemStorage

    def refuse(self, name, content):
        raise SuspiciousFileOperation(f"Detected path traversal attempt in '{name}'")

    monkeypatch.setattr(SafeFileSystemStorage, "_save", refuse)  # a storage refusing, as S3 or a bug might
    graph.get("/1003383421387256").mock(
        return_value=httpx.Response(200, json={"url": "https://lookaside.fbsbx.com/m?mid=4", "mime_type": "image/jpeg"})
    )
    graph.get("https://lookaside.fbsbx.com/m?mid=4").mock(return_value=httpx.Response(200, content=JPEG))
    whatsapp_post("image")
    run_worker()
    message = Message.objects.get()
    assert message.metadata["media_status"] == "failed" and "SuspiciousFileOperation" in message.metadata["media_error"]
    assert not message.attachments.exists()


def test_a_database_failure_while_recording_media_is_retried_and_leaves_no_file_behind(
    graph, whatsapp_post, whatsapp_channel, monkeypatch, settings
):
    from django.db import OperationalError

    graph.get("/1003383421387256").mock(
        return_value=httpx.Response(200, json={"url": "https://lookaside.fbsbx.com/m?mid=5", "mime_type": "image/jpeg"})
    )
    graph.get("https://lookaside.fbsbx.com/m?mid=5").mock(return_value=httpx.Response(200, content=JPEG))
    real_save, failures = MessageAttachment.save, []

    def fails_once(self, *args, **kwargs):
        if not failures:
            failures.append(self.file.name)
            raise OperationalError("the database went away for a moment")
        return real_save(self, *args, **kwargs)

    monkeypatch.setattr(MessageAttachment, "save", fails_once)
    whatsapp_post("image")
    run_worker()
    message = Message.objects.get()
    assert message.metadata["media_status"] == "downloaded", "retried, not failed for good"
    stored = [p for p in Path(settings.MEDIA_ROOT).rglob("*") if p.is_file()]
    assert stored == [Path(message.attachments.get().file.path)], "the first try's file did not stay behind"


def test_a_failed_download_keeps_the_message_and_says_why(graph, whatsapp_post, whatsapp_channel):
    route = graph.get("/1003383421387256").mock(return_value=meta_error(500, 1, "down"))
    whatsapp_post("image")
    run_worker()
    message = Message.objects.get()
    assert message.content == "Pedido do exame" and not message.attachments.exists()
    assert (
        message.metadata["media_status"] == "failed" and "Gave up after 5 attempts" in message.metadata["media_error"]
    )
    assert route.call_count == 5


def test_staff_reading_marks_the_message_read_on_whatsapp(graph, conversation, member):
    route = graph.post(f"/{PNID}/messages").mock(return_value=httpx.Response(200, json={"success": True}))
    mark_read(user=member, conversation=conversation, message=conversation.messages.get())
    run_worker()
    assert json.loads(route.calls.last.request.content) == {
        "messaging_product": "whatsapp",
        "status": "read",
        "message_id": "wamid.IN1",
    }
