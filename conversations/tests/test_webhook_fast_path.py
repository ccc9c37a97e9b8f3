"""The webhook's fast path (DESIGN §10): the usual patient message in two statements, served outside
Django's handler and middleware, storing and telling exactly what the full action would."""

import asyncio
import contextvars
import json
import threading
import time

import httpx
import pytest
from channels.db import database_sync_to_async
from django.conf import settings
from django.core.signals import request_started
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from conftest import APP_SECRET
from conversations import clinic_hours
from conversations.actions import inbound_fast
from conversations.actions.conversations import assign_conversation
from conversations.actions.inbound import receive_inbound_message
from conversations.management.commands.simulate_patients import notification
from conversations.models import Contact, Conversation, Message, WhatsAppChannel
from conversations.webhooks import whatsapp, whatsapp_channels
from conversations.webhooks.whatsapp import receive_notification, signature_of
from realtime.models import Event
from realtime.tests.test_consumer import as_member, frame
from taskmed.asgi import application

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
NUMBER = "106540352242922"
PHONE = "5511987654321"


def signed(payload: dict) -> tuple[bytes, str]:
    body = json.dumps(payload).encode()
    return body, signature_of(body, APP_SECRET)


def patient_writes(text: str, n: int, **who) -> tuple[int, dict]:
    return receive_notification(*signed(notification(NUMBER, text, n, phone=PHONE, name="Maria Souza", **who)))


def shape(event: Event) -> dict:
    """An event's data without what differs between two stores of the same thing (ids and times)."""
    data = json.loads(json.dumps(event.data))
    for key in ("id", "created_at", "conversation_id"):
        data["message"].pop(key, None)
    data["contact"].pop("id")
    return data


@pytest.fixture
def known_patient(clinic, whatsapp_channel):
    """A patient who wrote before and has an open conversation: what most webhooks are."""
    status, _ = patient_writes("Olá", 0)
    assert status == 200
    return Conversation.objects.get(clinic=clinic)


def test_the_usual_message_is_one_statement(known_patient):
    with CaptureQueriesContext(connection) as queries:
        status, body = patient_writes("Bom dia", 1)
    assert status == 200 and body["received"]["messages"] == 1
    assert len(queries) == 1, [q["sql"][:80] for q in queries]
    message = Message.objects.get(content="Bom dia")
    assert (message.direction, message.sender_type, message.status) == ("inbound", "patient", "delivered")
    assert message.conversation_id == known_patient.pk and message.created_at == message.status_changed_at
    event = Event.objects.get(type="message:new", data__message__content="Bom dia")
    assert event.data["message"]["id"] == message.pk, "the event has the id the database gave the message"


def test_a_conversation_changed_by_another_process_is_read_again(known_patient, member):
    """What this process remembers of the patient and the conversation is checked by the write: after a
    change made elsewhere (here the patient renamed), the message is stored all the same and its frame
    names the patient as they are now."""
    Conversation.objects.filter(pk=known_patient.pk).update(assignee=member, updated_at=timezone.now())
    Contact.objects.filter(pk=known_patient.contact_id).update(name="Maria Aparecida", updated_at=timezone.now())
    with CaptureQueriesContext(connection) as queries:
        assert patient_writes("Depois da troca", 1)[0] == 200
    assert len(queries) == 3, "the write found it changed, read it again, and wrote"
    event = Event.objects.filter(type="message:new").latest("seq")
    assert event.data["message"]["content"] == "Depois da troca"
    assert event.data["contact"]["display_name"] == "Maria Aparecida"
    with CaptureQueriesContext(connection) as queries:
        assert patient_writes("E de novo", 2)[0] == 200
    assert len(queries) == 1, "what was read again is remembered"


def test_the_fast_path_stores_and_tells_what_the_full_action_would(known_patient, clinic, make_clinic):
    """The same message stored both ways: the same rows and the same frame, but for ids and times."""
    patient_writes("Bom dia", 1)
    fast = Event.objects.filter(clinic=clinic, type="message:new").latest("seq")
    other = make_clinic()
    receive_inbound_message(clinic=other, phone=PHONE, profile_name="Maria Souza", content="Olá", external_id="o0")
    receive_inbound_message(
        clinic=other,
        phone=PHONE,
        profile_name="Maria Souza",
        content="Bom dia",
        external_id="o1",
        metadata=Message.objects.get(content="Bom dia").metadata,
    )
    full = Event.objects.filter(clinic=other, type="message:new").latest("seq")
    assert shape(fast) == shape(full)
    known_patient.refresh_from_db()
    message = Message.objects.get(clinic=clinic, content="Bom dia")
    assert fast.data["message"]["id"] == message.pk and fast.seq == 3
    assert known_patient.last_message_at == message.created_at


def test_a_new_patients_first_message_is_three_statements_and_told_as_the_full_action_would(
    clinic, whatsapp_channel, make_clinic
):
    whatsapp_channels.directory()  # the channels are held in memory from the first notification on
    clinic_hours.of(clinic.pk)  # and so are the clinic's hours
    with CaptureQueriesContext(connection) as queries:
        status, body = patient_writes("Primeira vez", 1)
    assert status == 200 and body["received"]["messages"] == 1
    assert len(queries) == 3, [q["sql"][:80] for q in queries]
    other = make_clinic()
    receive_inbound_message(
        clinic=other,
        phone=PHONE,
        profile_name="Maria Souza",
        content="Primeira vez",
        external_id="o1",
        metadata=Message.objects.get(content="Primeira vez").metadata,
    )
    fast = list(Event.objects.filter(clinic=clinic).order_by("seq"))
    full = list(Event.objects.filter(clinic=other).order_by("seq"))
    assert (
        [(e.seq, e.type) for e in fast]
        == [(e.seq, e.type) for e in full]
        == [
            (1, "conversation:new"),
            (2, "message:new"),
        ]
    )
    assert shape(fast[1]) == shape(full[1])
    fast_thread, full_thread = fast[0].data["conversation"], full[0].data["conversation"]
    for thread in (fast_thread, full_thread):
        for key in ("id", "created_at", "updated_at", "last_message_at", "awaiting_since"):
            thread.pop(key)
        thread["contact"].pop("id")
    assert fast_thread == full_thread
    conversation = Conversation.objects.get(clinic=clinic)
    assert (conversation.contact.phone, conversation.contact.profile_name) == (PHONE, "Maria Souza")
    assert fast[0].conversation_id == conversation.pk == fast[1].data["message"]["conversation_id"]


def test_two_first_messages_of_one_new_patient_at_once_make_one_patient(clinic, whatsapp_channel):
    barrier = threading.Barrier(2)
    results = []

    def write(n):
        barrier.wait(5)
        results.append(patient_writes(f"ao mesmo tempo {n}", n)[0])
        connection.close()

    threads = [threading.Thread(target=write, args=(n,)) for n in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert results == [200, 200]
    assert Conversation.objects.filter(clinic=clinic).count() == 1
    assert Message.objects.filter(clinic=clinic).count() == 2
    assert list(Event.objects.filter(clinic=clinic).order_by("seq").values_list("seq", "type")) == [
        (1, "conversation:new"),
        (2, "message:new"),
        (3, "message:new"),
    ]


def test_a_repeat_is_stored_once_and_told_once(known_patient):
    payload = notification(NUMBER, "Repetida", 1, phone=PHONE, name="Maria Souza")
    body, signature = signed(payload)
    assert receive_notification(body, signature)[0] == 200
    assert receive_notification(body, signature)[0] == 200
    assert Message.objects.filter(content="Repetida").count() == 1
    assert Event.objects.filter(type="message:new").count() == 2  # "Olá" and "Repetida"


def test_a_conversation_changed_between_read_and_write_is_not_told_stale(known_patient, member):
    """An assignment commits while the webhook waits for the conversation's row: the message is stored
    all the same, and its frame shows the conversation as it is now, after the assignment's frame."""
    assigned = threading.Event()

    def assign_and_hold():
        with transaction.atomic():
            assign_conversation(conversation=known_patient, assignee=member, actor=member)
            assigned.set()
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not waiting_on_a_lock():
                time.sleep(0.02)  # the webhook's statement is about to wait: let it
        connection.close()

    holder = threading.Thread(target=assign_and_hold)
    holder.start()
    assert assigned.wait(10)
    status, _ = patient_writes("Durante a troca", 1)
    holder.join(10)
    assert status == 200
    events = list(Event.objects.order_by("seq").values_list("type", "data"))
    assert [t for t, _ in events[-2:]] == ["conversation:updated", "message:new"]
    assert events[-2][1]["conversation"]["assignee"]["id"] == member.pk
    assert Message.objects.get(content="Durante a troca").conversation_id == known_patient.pk


def waiting_on_a_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0] > 0


def test_what_is_not_the_usual_case_takes_the_full_path(known_patient):
    """A new profile name is recorded, a quoted message linked: the fast path steps aside."""
    quoted = Message.objects.get(content="Olá")
    reply = notification(NUMBER, "Respondendo", 1, phone=PHONE, name="Maria S.")
    reply["entry"][0]["changes"][0]["value"]["messages"][0]["context"] = {"id": quoted.external_id}
    with CaptureQueriesContext(connection) as queries:
        assert receive_notification(*signed(reply))[0] == 200
    assert len(queries) > 2
    message = Message.objects.get(content="Respondendo")
    assert message.metadata["reply_to_message_id"] == quoted.pk
    assert message.conversation.contact.profile_name == "Maria S."


async def test_concurrent_messages_of_one_patient_are_all_stored_in_seq_order(known_patient, clinic, member):
    ws = await as_member(member, clinic)
    sends = [database_sync_to_async(patient_writes, thread_sensitive=False)(f"foto {n}", n) for n in range(8)]
    assert [status for status, _ in await asyncio.gather(*sends)] == [200] * 8
    seqs = [(await frame(ws, durable_only=True))["seq"] for _ in range(8)]
    assert seqs == list(range(3, 11))
    await ws.disconnect()
    assert await database_sync_to_async(Message.objects.filter(content__startswith="foto").count)() == 8


# --- The ASGI route -------------------------------------------------------------------------------------


async def post(body: bytes, headers: dict, client: tuple[str, int] = ("127.0.0.1", 123)) -> httpx.Response:
    transport = httpx.ASGITransport(app=application, client=client)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        return await http.post("/webhooks/whatsapp/", content=body, headers=headers)


async def test_the_route_answers_as_the_view_does_without_django_s_request_handling(known_patient, clinic):
    started = []

    def saw(**kwargs):
        started.append(kwargs)

    request_started.connect(saw)
    on_loop = whatsapp.stored_by()["event_loop"]
    try:
        body, signature = signed(notification(NUMBER, "Pela rota", 1, phone=PHONE, name="Maria Souza"))
        ok = await post(body, {"X-Hub-Signature-256": signature, "Content-Type": "application/json"})
        assert whatsapp.stored_by()["event_loop"] == on_loop + 1, "a known patient's message never left the loop"
        forged = await post(body, {"X-Hub-Signature-256": "sha256=" + "0" * 64})
        unreadable = await post(b"{", {"X-Hub-Signature-256": signature_of(b"{", APP_SECRET)})
    finally:
        request_started.disconnect(saw)
    assert ok.status_code == 200 and ok.json() == {"received": {"messages": 1, "statuses": 0, "ignored": 0}}
    assert forged.status_code == 403 and forged.json()["code"] == "bad_signature"
    assert unreadable.status_code == 400 and unreadable.json()["code"] == "invalid_payload"
    assert started == [], "served outside Django's handler"
    assert await database_sync_to_async(Message.objects.filter(content="Pela rota").count)() == 1


async def test_a_message_stored_on_the_loop_reaches_the_clinic_s_screens_and_the_log(known_patient, clinic, member):
    ws = await as_member(member, clinic)
    body, signature = signed(notification(NUMBER, "Do laço", 1, phone=PHONE, name="Maria Souza"))
    assert (await post(body, {"X-Hub-Signature-256": signature})).status_code == 200
    live = await frame(ws, durable_only=True)
    logged = await database_sync_to_async(lambda: Event.objects.get(seq=live["seq"], clinic=clinic))()
    stored = await database_sync_to_async(Message.objects.get)(content="Do laço")
    assert live["type"] == "message:new" and live["data"]["message"]["id"] == stored.pk
    assert live["data"] == logged.data, "what is sent is what is logged"
    await ws.disconnect()


@pytest.mark.redis  # the read cache's bump is on the path only with Redis
async def test_a_message_stored_on_the_loop_makes_no_database_wrapper_or_cache_backend_of_its_own(
    known_patient, monkeypatch
):
    """Each request runs in a context of its own, where Django's `connection` and `cache` make a new
    wrapper and a new backend: the loop's path asks neither (DESIGN §10, docs/benchmarks.md)."""
    from django.core.cache.backends.base import BaseCache
    from django.db.backends.base.base import BaseDatabaseWrapper

    made = []
    for cls in (BaseDatabaseWrapper, BaseCache):
        monkeypatch.setattr(cls, "__init__", _counted(cls.__init__, made, cls.__name__))
    on_loop = whatsapp.stored_by()["event_loop"]
    n = 0
    for turn in (1, 2):
        # A known patient's message, one from a patient this process forgot, a new patient's first message.
        for phone, forget in ((PHONE, False), (PHONE, True), (f"55119{turn:08d}", False)):
            n += 1
            if forget:
                inbound_fast.forget_snapshots()
            body, signature = signed(notification(NUMBER, f"Contexto {n}", n, phone=phone, name="Maria Souza"))
            # As a server runs each request: a task with a context of its own.
            request = asyncio.create_task(post(body, {"X-Hub-Signature-256": signature}), context=contextvars.Context())
            assert (await request).status_code == 200
        if turn == 1:
            made.clear()  # the first of each may make what the process then keeps
    assert whatsapp.stored_by()["event_loop"] == on_loop + n
    assert made == []


def _counted(init, made: list, name: str):
    def counting(self, *args, **kwargs):
        made.append(name)
        init(self, *args, **kwargs)

    return counting


async def test_a_new_patient_and_one_this_process_never_saw_are_stored_on_the_loop_too(clinic, whatsapp_channel):
    await database_sync_to_async(whatsapp_channels.directory)()
    on_loop = whatsapp.stored_by()["event_loop"]
    body, signature = signed(notification(NUMBER, "Primeira vez", 1, phone=PHONE, name="Maria Souza"))
    assert (await post(body, {"X-Hub-Signature-256": signature})).status_code == 200
    inbound_fast.forget_snapshots()  # as a process that never saw this patient
    body, signature = signed(notification(NUMBER, "Segunda vez", 2, phone=PHONE, name="Maria Souza"))
    assert (await post(body, {"X-Hub-Signature-256": signature})).status_code == 200
    assert whatsapp.stored_by()["event_loop"] == on_loop + 2
    events = await database_sync_to_async(lambda: list(Event.objects.order_by("seq").values_list("type", flat=True)))()
    assert events == ["conversation:new", "message:new", "message:new"]


async def test_messages_written_by_another_process_do_not_send_the_next_one_the_long_way(known_patient, clinic):
    """Two server processes take turns with one patient's messages: each keeps writing in one statement."""
    on_loop = whatsapp.stored_by()["event_loop"]
    for n in range(1, 4):
        await database_sync_to_async(receive_inbound_message)(  # "another process"
            clinic=clinic, phone=PHONE, profile_name="Maria Souza", content=f"de lá {n}", external_id=f"other-{n}"
        )
        body, signature = signed(notification(NUMBER, f"daqui {n}", n, phone=PHONE, name="Maria Souza"))
        assert (await post(body, {"X-Hub-Signature-256": signature})).status_code == 200
    assert whatsapp.stored_by()["event_loop"] == on_loop + 3
    stored = await database_sync_to_async(
        lambda: list(Message.objects.filter(clinic=clinic).order_by("id").values_list("content", flat=True))
    )()
    assert stored == ["Olá", "de lá 1", "daqui 1", "de lá 2", "daqui 2", "de lá 3", "daqui 3"]


@pytest.mark.redis
@pytest.mark.parametrize("redis_forgot_its_scripts", [False, True])
async def test_the_list_read_after_a_message_stored_on_the_loop_shows_it(
    known_patient, member, jwt_client, redis_forgot_its_scripts
):
    """The read cache is bumped by the loop's write too (and still when Redis lost its scripts)."""
    api = await database_sync_to_async(jwt_client)(member)
    list_of = database_sync_to_async(lambda: api.get("/api/conversations/").json()["results"][0]["last_message"])
    assert (await list_of())["content"] == "Olá"  # now cached
    if redis_forgot_its_scripts:
        import redis

        redis.Redis.from_url(settings.REDIS_URL).script_flush()
    for n, text in enumerate(("Primeira pelo laço", "Segunda pelo laço"), start=1):
        body, signature = signed(notification(NUMBER, text, n, phone=PHONE, name="Maria Souza"))
        assert (await post(body, {"X-Hub-Signature-256": signature})).status_code == 200
        assert (await list_of())["content"] == text


async def test_the_route_refuses_a_body_over_the_limit_and_a_host_it_does_not_serve(settings, known_patient):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    big, signature = signed(notification(NUMBER, "x" * 2000, 1, phone=PHONE))
    assert (await post(big, {"X-Hub-Signature-256": signature})).status_code == 413
    small, signature = signed(notification(NUMBER, "oi", 2, phone=PHONE))
    assert (await post(small, {"X-Hub-Signature-256": signature, "Host": "evil.example"})).status_code == 400
    assert await database_sync_to_async(Message.objects.count)() == 1, "only the patient's first message"


async def test_a_channel_added_is_routed_at_once(clinic, member):
    """The secrets are held in memory and refreshed when a channel changes."""
    body, signature = signed(notification(NUMBER, "Primeira", 1, phone=PHONE))
    assert (await post(body, {"X-Hub-Signature-256": signature})).status_code == 403
    await database_sync_to_async(WhatsAppChannel.objects.create)(
        clinic=clinic, phone_number_id=NUMBER, access_token="t", app_secret=APP_SECRET, verify_token="v"
    )
    assert (await post(body, {"X-Hub-Signature-256": signature})).status_code == 200


async def test_a_rotated_secret_and_a_removed_channel_are_honoured_at_once(known_patient, whatsapp_channel, member):
    """Once support rotates the app secret, the old one is refused and the new one accepted; once the
    channel is removed, nothing signed for it is stored."""
    from conversations.actions.support import remove_channel, set_channel_credentials

    body, old_signature = signed(notification(NUMBER, "Depois da troca", 1, phone=PHONE))
    whatsapp_channel.app_secret = "a-new-app-secret-0123456789abcdef"
    await database_sync_to_async(set_channel_credentials)(whatsapp_channel, actor=member, editable=["app_secret"])
    assert (await post(body, {"X-Hub-Signature-256": old_signature})).status_code == 403
    new_signature = signature_of(body, "a-new-app-secret-0123456789abcdef")
    assert (await post(body, {"X-Hub-Signature-256": new_signature})).status_code == 200

    await database_sync_to_async(remove_channel)(whatsapp_channel, actor=member)
    later, signature = signed(notification(NUMBER, "Sem canal", 2, phone=PHONE))
    assert (await post(later, {"X-Hub-Signature-256": signature})).status_code == 403
    stored = await database_sync_to_async(lambda: list(Message.objects.values_list("content", flat=True)))()
    assert "Depois da troca" in stored and "Sem canal" not in stored


def hmacs_on(monkeypatch) -> list[tuple[str, str]]:
    """Every HMAC the webhook computes from here on: the thread it ran on, and the secret."""
    computed, real_signature = [], whatsapp_channels.signature_of

    def counted(body, secret):
        computed.append((threading.current_thread().name, secret))
        return real_signature(body, secret)

    monkeypatch.setattr(whatsapp_channels, "signature_of", counted)
    return computed


async def test_a_signature_by_another_app_than_the_named_number_s_is_refused_with_one_hmac(
    clinic, other_clinic, monkeypatch
):
    """Whoever sent it, a request costs one HMAC at most (the secret of the number of ours the body names),
    on the event loop: the old search over every app's secret, on the database threads, is gone."""
    await database_sync_to_async(WhatsAppChannel.objects.create)(
        clinic=clinic, phone_number_id=NUMBER, access_token="t", app_secret=APP_SECRET, verify_token="v"
    )
    for n, app in enumerate(["second-app", "third-app", "fourth-app"]):
        await database_sync_to_async(WhatsAppChannel.objects.create)(
            clinic=other_clinic, phone_number_id=f"99900011{n}", access_token="t", app_secret=app, verify_token=app
        )
    await database_sync_to_async(whatsapp_channels.directory)()  # held in memory, as after the first notification
    computed = hmacs_on(monkeypatch)
    loop_thread = threading.current_thread().name
    body = json.dumps(notification(NUMBER, "Outro app", 1, phone=PHONE)).encode()
    answer = await post(body, {"X-Hub-Signature-256": signature_of(body, "third-app")})
    assert answer.status_code == 403 and answer.json()["code"] == "bad_signature"
    forged = await post(body, {"X-Hub-Signature-256": "sha256=" + "0" * 64})
    assert forged.status_code == 403
    nobody = json.dumps(notification("123000000000000", "De ninguém", 1, phone=PHONE)).encode()
    assert (await post(nobody, {"X-Hub-Signature-256": signature_of(nobody, "third-app")})).status_code == 403
    assert computed == [(loop_thread, APP_SECRET)] * 2, "one HMAC each on the loop; none for a number not ours"
    assert not await database_sync_to_async(Message.objects.filter(content__in=["Outro app", "De ninguém"]).exists)()


async def test_strangers_are_answered_while_every_database_thread_is_busy(known_patient, monkeypatch):
    """The database threads also authenticate sockets: a forged request must never wait for one."""
    from realtime import db

    await database_sync_to_async(whatsapp_channels.directory)()
    release = threading.Event()
    busy = [asyncio.ensure_future(db.run(release.wait, 20)) for _ in range(settings.DB_THREADS)]
    try:
        body, _ = signed(notification(NUMBER, "Forjada", 1, phone=PHONE))
        started = time.monotonic()
        forged = await asyncio.wait_for(post(body, {"X-Hub-Signature-256": "sha256=" + "0" * 64}), 5)
        assert forged.status_code == 403 and time.monotonic() - started < 2
    finally:
        release.set()
        await asyncio.gather(*busy)


async def test_an_address_refused_too_often_is_answered_429_before_anything_is_checked(
    settings, known_patient, monkeypatch
):
    settings.WHATSAPP_REFUSALS_PER_MINUTE = 3
    await database_sync_to_async(whatsapp_channels.directory)()
    computed = hmacs_on(monkeypatch)
    body, signature = signed(notification(NUMBER, "De um estranho", 1, phone=PHONE))
    stranger = {"X-Hub-Signature-256": "sha256=" + "0" * 64}
    answers = [await post(body, stranger, client=("203.0.113.9", 4000)) for _ in range(5)]
    assert [a.status_code for a in answers] == [403, 403, 403, 429, 429]
    assert answers[-1].json()["code"] == "rate_limited" and int(answers[-1].headers["Retry-After"]) > 0
    assert len(computed) == 3, "the refused address costs nothing more"
    elsewhere = await post(body, stranger, client=("198.51.100.7", 4000))
    assert elsewhere.status_code == 403, "other addresses are judged on their own"
    meta = await post(body, {"X-Hub-Signature-256": signature}, client=("173.252.127.1", 4000))
    assert meta.status_code == 200 and meta.json()["received"]["messages"] == 1


async def test_one_apps_failing_signatures_never_hold_up_another_apps_notifications_from_metas_addresses(
    settings, known_patient, other_clinic
):
    """Meta sends every app's notifications from its own few addresses. An app whose secret is stale here
    fails its signatures from there, again and again: only that app's requests are answered 429."""
    settings.WHATSAPP_REFUSALS_PER_MINUTE = 3
    await database_sync_to_async(WhatsAppChannel.objects.create)(
        clinic=other_clinic, phone_number_id="999000111", access_token="t", app_secret="stale-here", verify_token="v"
    )
    meta = ("173.252.127.1", 4000)
    stale = json.dumps(notification("999000111", "Do outro app", 1, phone="5511911112222")).encode()
    signed_elsewhere = {"X-Hub-Signature-256": signature_of(stale, "the-secret-meta-has-now")}
    answers = [(await post(stale, signed_elsewhere, client=meta)).status_code for _ in range(4)]
    assert answers == [403, 403, 403, 429]
    body, signature = signed(notification(NUMBER, "Do app em dia", 1, phone=PHONE))
    ours = await post(body, {"X-Hub-Signature-256": signature}, client=meta)
    assert ours.status_code == 200 and ours.json()["received"]["messages"] == 1


async def test_a_channel_change_in_the_middle_of_a_notification_never_makes_the_loop_query(known_patient, monkeypatch):
    """The channels are dropped from memory (a change elsewhere) while the event loop is checking a
    notification: it goes on with what it had read, and never queries the database from the loop."""
    real_signature = whatsapp_channels.signature_of

    def changed_meanwhile(body, secret):
        whatsapp_channels.forget()
        return real_signature(body, secret)

    await database_sync_to_async(whatsapp_channels.directory)()
    monkeypatch.setattr(whatsapp_channels, "signature_of", changed_meanwhile)
    body, signature = signed(notification(NUMBER, "Durante a troca", 1, phone=PHONE))
    assert (await post(body, {"X-Hub-Signature-256": signature})).status_code == 200
    assert await database_sync_to_async(Message.objects.filter(content="Durante a troca").exists)()


def test_a_snoozed_conversation_is_woken_by_the_patients_message(known_patient, member):
    """The usual message's one statement leaves a snoozed conversation to the full action, which ends the
    snooze and tells every screen."""
    from datetime import timedelta

    from conversations.actions.conversations import snooze_conversation

    snooze_conversation(conversation=known_patient, until=timezone.now() + timedelta(days=1), actor=member)
    assert patient_writes("Voltei", 1)[0] == 200
    known_patient.refresh_from_db()
    assert known_patient.snoozed_until is None
    assert Message.objects.filter(content="Voltei", conversation=known_patient).count() == 1
    woke = Event.objects.filter(type="conversation:updated").latest("seq")
    assert (
        woke.data["changed"] == ["snoozed_until"] and woke.seq < Event.objects.get(data__message__content="Voltei").seq
    )
