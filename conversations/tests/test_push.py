"""Web Push to staff's devices (DESIGN §12), against a push service stand-in on 127.0.0.1 at the HTTP
boundary: what it receives is decrypted as a browser would (RFC 8291, aes128gcm) and must say nothing
about the patient. Subscriptions go through the API; patients write through the WhatsApp webhook; the
real task worker sends."""

import base64
import json
import os
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import http_ece
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from conftest import APP_SECRET
from conversations.actions.conversations import assign_conversation
from conversations.actions.notes import add_note
from conversations.management.commands.simulate_patients import notification
from conversations.models import Conversation, Membership, PushSubscription, Role
from conversations.push_keys import b64url, new_key_pair
from conversations.tests.test_business_hours import OPEN_WEEK, set_hours
from conversations.tests.test_delivery import run_worker
from conversations.webhooks.whatsapp import receive_notification, signature_of

pytestmark = pytest.mark.django_db(transaction=True)
NUMBER = "106540352242922"
PHONE = "5511987654321"


class PushService:
    """A push service on 127.0.0.1: records each push; answers 201, or 410 for a device it forgot."""

    def __init__(self):
        self.received: list[dict] = []
        self.gone: set[str] = set()
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = {name.lower(): value for name, value in self.headers.items()}
                service.received.append({"path": self.path, "headers": headers, "body": body})
                self.send_response(410 if self.path in service.gone else 201)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def to(self, name: str) -> list[dict]:
        return [push for push in self.received if push["path"] == f"/push/{name}"]


class Browser:
    """A browser's side of a subscription: its key pair and auth secret, to decrypt what it is pushed."""

    def __init__(self, service: PushService, name: str):
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.auth = os.urandom(16)
        self.endpoint = f"{service.url}/push/{name}"

    def subscription(self, **preferences) -> dict:
        public = self.key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return {"endpoint": self.endpoint, "keys": {"p256dh": b64url(public), "auth": b64url(self.auth)}} | preferences

    def read(self, push: dict) -> dict:
        assert push["headers"]["content-encoding"] == "aes128gcm"
        clear = http_ece.decrypt(push["body"], private_key=self.key, auth_secret=self.auth, version="aes128gcm")
        return json.loads(clear)


@pytest.fixture
def service(settings):
    public, private = new_key_pair()
    settings.WEB_PUSH_PUBLIC_KEY, settings.WEB_PUSH_PRIVATE_KEY = public, private
    settings.WEB_PUSH_HOSTS = ["127.0.0.1"]
    service = PushService()
    yield service
    service.server.shutdown()


@pytest.fixture
def admin(clinic, make_member):
    return make_member(clinic, Role.ADMIN, first_name="Helena")


def patient_writes(text: str, n: int = 0, ago: int = 0) -> Conversation:
    payload = notification(NUMBER, text, n, phone=PHONE, name="Maria Souza")
    payload["entry"][0]["changes"][0]["value"]["messages"][0]["timestamp"] = str(int(time.time()) - ago)
    body = json.dumps(payload).encode()
    assert receive_notification(body, signature_of(body, APP_SECRET))[0] == 200
    return Conversation.objects.get(contact__phone=PHONE)


def subscribe(api, browser: Browser, **preferences):
    response = api.put("/api/push/subscription/", browser.subscription(**preferences), format="json")
    assert response.status_code == 200, response.content
    return response.json()


def test_a_patient_message_is_pushed_by_the_worker_saying_nothing_about_the_patient(
    jwt_client, clinic, member, admin, service, whatsapp_channel, settings
):
    set_hours(clinic, admin, OPEN_WEEK, away_mode="off")
    julia = Browser(service, "julia")
    assert subscribe(jwt_client(member), julia) == {
        "endpoint": julia.endpoint,
        "assigned": True,
        "unassigned": True,
        "mentions": True,
        "late": False,
    }
    conversation = patient_writes("Estou com dor no peito")
    assert service.received == [], "never on the request's path"
    run_worker()
    (received,) = service.to("julia")
    data = julia.read(received)
    assert data == {
        "kind": "message",
        "title": "Clínica Aurora",
        "body": "Nova mensagem",
        "clinic_id": clinic.pk,
        "conversation_id": conversation.pk,
        "url": f"/inbox/{conversation.pk}/?clinic={clinic.pk}",
    }
    clear = json.dumps(data)
    assert "dor no peito" not in clear and "Maria" not in clear and PHONE not in clear
    vapid = received["headers"]["authorization"]
    assert vapid.startswith("vapid t=") and f"k={settings.WEB_PUSH_PUBLIC_KEY}" in vapid
    assert int(received["headers"]["ttl"]) > 0
    assert PushSubscription.objects.get().last_sent_at is not None


def test_an_assigned_conversation_tells_its_member_and_an_unassigned_one_those_who_want_them(
    jwt_client, clinic, member, admin, make_member, service, whatsapp_channel
):
    set_hours(clinic, admin, OPEN_WEEK, away_mode="off")
    bruno = make_member(clinic, Role.RECEPTIONIST)
    julia, helena, bruno_phone = Browser(service, "julia"), Browser(service, "helena"), Browser(service, "bruno")
    subscribe(jwt_client(member), julia)
    subscribe(jwt_client(admin), helena, unassigned=False)
    subscribe(jwt_client(bruno), bruno_phone)
    conversation = patient_writes("Oi")
    run_worker()
    assert (len(service.to("julia")), len(service.to("helena")), len(service.to("bruno"))) == (1, 0, 1)
    assign_conversation(conversation=conversation, assignee=admin, actor=admin)
    patient_writes("Alguém?", 1)
    run_worker()
    assert (len(service.to("julia")), len(service.to("helena")), len(service.to("bruno"))) == (1, 1, 1)


def test_a_mention_tells_the_mentioned_colleague_and_not_the_author(
    jwt_client, clinic, member, admin, service, whatsapp_channel
):
    set_hours(clinic, admin, OPEN_WEEK, away_mode="off")
    julia, helena = Browser(service, "julia"), Browser(service, "helena")
    subscribe(jwt_client(member), julia, unassigned=False)
    subscribe(jwt_client(admin), helena, unassigned=False)
    conversation = patient_writes("Oi")
    add_note(conversation=conversation, author=admin, content=f"@{member.username} pode ver? @{admin.username}")
    run_worker()
    (mention,) = service.to("julia")
    assert julia.read(mention)["kind"] == "mention" and julia.read(mention)["conversation_id"] == conversation.pk
    assert service.to("helena") == []


def test_a_wait_past_the_target_is_pushed_to_who_wants_it_once(
    jwt_client, clinic, member, admin, service, whatsapp_channel
):
    set_hours(clinic, admin, OPEN_WEEK, away_mode="off")  # a 15-minute target
    julia = Browser(service, "julia")
    subscribe(jwt_client(member), julia, unassigned=False, late=True)
    patient_writes("Oi", ago=20 * 60)  # twenty minutes of open time ago: past the target already
    run_worker()
    (late,) = service.to("julia")
    assert julia.read(late)["kind"] == "late"
    patient_writes("Ainda aguardo", 1)  # the same wait: no second
    run_worker()
    assert len(service.to("julia")) == 1


def test_an_answered_wait_is_not_pushed_as_late(jwt_client, clinic, member, admin, service, whatsapp_channel):
    from conversations.actions.messages import send_outbound_message

    set_hours(clinic, admin, OPEN_WEEK, away_mode="off")
    subscribe(jwt_client(member), Browser(service, "julia"), unassigned=False, late=True)
    conversation = patient_writes("Oi", ago=20 * 60)
    send_outbound_message(conversation=conversation, sender=member, content="Olá!")
    run_worker()
    assert service.to("julia") == []


def test_a_device_the_push_service_forgot_is_removed(jwt_client, clinic, member, admin, service, whatsapp_channel):
    set_hours(clinic, admin, OPEN_WEEK, away_mode="off")
    subscribe(jwt_client(member), Browser(service, "julia"))
    service.gone.add("/push/julia")
    patient_writes("Oi")
    run_worker()
    assert len(service.to("julia")) == 1 and not PushSubscription.objects.exists()


def test_nothing_is_sent_for_a_clinic_the_member_left(jwt_client, clinic, member, admin, service, whatsapp_channel):
    set_hours(clinic, admin, OPEN_WEEK, away_mode="off")
    subscribe(jwt_client(member), Browser(service, "julia"))
    Membership.objects.filter(user=member, clinic=clinic).delete()
    assert not PushSubscription.objects.exists()
    patient_writes("Oi")
    run_worker()
    assert service.received == []


def test_logging_out_removes_that_logins_device(jwt_client, client, clinic, member, service):
    api = jwt_client(member)
    subscribe(api, Browser(service, "api"))
    assert api.post("/api/auth/logout/", {}, format="json").status_code == 204
    assert not PushSubscription.objects.exists()
    client.force_login(member)
    from rest_framework.test import APIClient

    browser = APIClient(enforce_csrf_checks=False)
    browser.force_login(member)
    browser.get("/inbox/")  # the browser chooses its clinic (it has one)
    assert (
        browser.put("/api/push/subscription/", Browser(service, "b").subscription(), format="json").status_code == 200
    )
    assert PushSubscription.objects.get().session_key == browser.session.session_key
    browser.post("/accounts/logout/")
    assert not PushSubscription.objects.exists()


@pytest.mark.parametrize(
    "endpoint",
    [
        "https://evil.example.com/push/1",
        "http://10.0.0.5/push/1",
        "http://127.0.0.1.evil.example/push/1",
        "javascript:alert(1)",
        "x" * 2000,
        # What URL parsers read differently: the check and the HTTP client must agree on where it goes.
        "https://10.0.0.5\\@fcm.googleapis.com/push/1",
        "http://127.0.0.2\\@127.0.0.1/push/1",
        "https://user:pw@fcm.googleapis.com/push/1",
        "https://fcm.googleapis.com:8443/push/1",
        "https://fcm.googleapis.com /push/1",
        "https://fcm.googleapis.com\t/push/1",
        "https://fcm.googleapis.com.evil.example/push/1",
        "ftp://fcm.googleapis.com/push/1",
    ],
)
def test_a_subscription_to_anything_but_a_known_push_service_is_refused(jwt_client, member, service, endpoint):
    body = Browser(service, "x").subscription() | {"endpoint": endpoint}
    response = jwt_client(member).put("/api/push/subscription/", body, format="json")
    assert response.status_code == 400 and response.json()["field"] == "endpoint"
    assert not PushSubscription.objects.exists()


@pytest.mark.parametrize(
    "change,field",
    [
        ({"keys": {"p256dh": "", "auth": "x"}}, "keys.p256dh"),
        ({"keys": {"p256dh": "x"}}, "keys.auth"),
        ({"assigned": "talvez"}, "assigned"),
        ({"sound": True}, "sound"),
    ],
)
def test_a_malformed_subscription_is_a_400_naming_the_field(jwt_client, member, service, change, field):
    body = Browser(service, "x").subscription() | change
    response = jwt_client(member).put("/api/push/subscription/", body, format="json")
    assert response.status_code == 400 and response.json()["field"] == field, response.content


def test_without_vapid_keys_the_server_says_push_is_off_and_stores_nothing(jwt_client, member, settings):
    settings.WEB_PUSH_PUBLIC_KEY = settings.WEB_PUSH_PRIVATE_KEY = ""
    api = jwt_client(member)
    assert api.get("/api/push/").json() == {"enabled": False, "public_key": None}
    body = {"endpoint": "https://fcm.googleapis.com/fcm/send/abc", "keys": {"p256dh": "a", "auth": "b"}}
    assert api.put("/api/push/subscription/", body, format="json").status_code == 400
    assert not PushSubscription.objects.exists()


def test_the_push_settings_give_the_public_key(jwt_client, member, service, settings):
    assert jwt_client(member).get("/api/push/").json() == {"enabled": True, "public_key": settings.WEB_PUSH_PUBLIC_KEY}


def test_another_clinics_devices_hear_nothing_and_touch_nothing_of_this_one(
    jwt_client, clinic, member, admin, outsider, other_clinic, service, whatsapp_channel
):
    set_hours(clinic, admin, OPEN_WEEK, away_mode="off")
    julia, theirs = Browser(service, "julia"), Browser(service, "outsider")
    subscribe(jwt_client(member), julia)
    subscribe(jwt_client(outsider), theirs)
    outsider_api = jwt_client(outsider)
    assert outsider_api.get("/api/push/subscription/", {"endpoint": julia.endpoint}).status_code == 404
    assert (
        outsider_api.delete("/api/push/subscription/", {"endpoint": julia.endpoint}, format="json").status_code == 204
    )
    assert PushSubscription.objects.filter(user=member).exists(), "another's device is left alone"
    patient_writes("Oi")
    run_worker()
    assert len(service.to("julia")) == 1 and service.to("outsider") == []


def test_a_clinic_without_devices_queues_nothing_for_push(clinic, admin, service, whatsapp_channel):
    from django_tasks_db.models import DBTaskResult

    set_hours(clinic, admin, OPEN_WEEK, away_mode="off")
    patient_writes("Oi")
    patient_writes("Tudo bem?", 1)
    assert not DBTaskResult.objects.filter(task_path__endswith="send_push").exists()


def test_make_vapid_keys_prints_a_pair_a_browser_and_pywebpush_take():
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("make_vapid_keys", stdout=out)
    lines = dict(line.split("=", 1) for line in out.getvalue().split())
    public = base64.urlsafe_b64decode(lines["WEB_PUSH_PUBLIC_KEY"] + "==")
    private = base64.urlsafe_b64decode(lines["WEB_PUSH_PRIVATE_KEY"] + "==")
    assert len(public) == 65 and public[0] == 4 and len(private) == 32
    call_command("make_vapid_keys", stdout=(again := StringIO()))
    assert again.getvalue() != out.getvalue()


def test_every_path_a_patient_message_takes_is_pushed_once(
    jwt_client, clinic, member, admin, service, whatsapp_channel
):
    """The full action (a first message), the webhook's fast path in Django's thread, and the fast path on the
    server's event loop each ask the worker once."""
    import asyncio

    from conversations.tests.test_webhook_fast_path import post
    from conversations.webhooks import whatsapp

    set_hours(clinic, admin, OPEN_WEEK, away_mode="off")
    julia = Browser(service, "julia")
    subscribe(jwt_client(member), julia)
    patient_writes("Primeira")
    patient_writes("Segunda", 1)
    on_loop = whatsapp.stored_by()["event_loop"]
    body = json.dumps(notification(NUMBER, "Terceira", 2, phone=PHONE, name="Maria Souza")).encode()
    response = asyncio.run(post(body, {"X-Hub-Signature-256": signature_of(body, APP_SECRET)}))
    assert response.status_code == 200 and whatsapp.stored_by()["event_loop"] == on_loop + 1
    run_worker()
    assert [julia.read(push)["kind"] for push in service.to("julia")] == ["message"] * 3


@pytest.mark.parametrize("ending", ["password changed", "deactivated", "browser session expired"])
def test_a_login_that_ended_without_a_logout_tells_its_device_nothing_more(
    jwt_client, clinic, member, admin, service, whatsapp_channel, ending
):
    from django.contrib.sessions.models import Session
    from rest_framework.test import APIClient

    set_hours(clinic, admin, OPEN_WEEK, away_mode="off")
    subscribe(jwt_client(member), Browser(service, "api"))
    browser = APIClient()
    browser.force_login(member)
    browser.get("/inbox/")
    assert (
        browser.put("/api/push/subscription/", Browser(service, "tab").subscription(), format="json").status_code == 200
    )
    patient_writes("Oi")
    run_worker()
    assert (len(service.to("api")), len(service.to("tab"))) == (1, 1), "both logins open: both told"
    if ending == "password changed":
        member.set_password("uma-senha-nova-e-longa")  # support's change, a reset: no logout seen here
        member.save()
    elif ending == "deactivated":
        member.is_active = False
        member.save(update_fields=["is_active"])
    else:
        Session.objects.all().delete()  # expired and cleared
        subscribe(jwt_client(member), Browser(service, "api2"))  # another login, still open
    patient_writes("Alguém?", 1)
    run_worker()
    left = set(PushSubscription.objects.values_list("endpoint", flat=True))
    if ending == "browser session expired":  # the API login is still open, and told; the browser's is not
        assert (len(service.to("api")), len(service.to("tab")), len(service.to("api2"))) == (2, 1, 1)
        assert left == {Browser(service, "api").endpoint, Browser(service, "api2").endpoint}
    else:
        assert (len(service.to("api")), len(service.to("tab"))) == (1, 1), "nothing more to the ended logins"
        if ending == "password changed":
            assert left == set(), "the devices of the ended logins are removed"


@pytest.mark.parametrize("query", ["%00", "a%00b", "x&endpoint=%00", "%ED%A0%80", ""])
def test_looking_up_a_device_by_an_unusable_endpoint_is_a_400_or_404_never_a_500(jwt_client, member, service, query):
    response = jwt_client(member).get(f"/api/push/subscription/?endpoint={query}")
    assert response.status_code in (400, 404), response.content
    if response.status_code == 400:
        assert response.json()["field"] == "endpoint"


def test_a_device_subscribed_with_an_older_key_pair_is_dropped_not_pushed(
    jwt_client, clinic, member, admin, service, whatsapp_channel, settings
):
    set_hours(clinic, admin, OPEN_WEEK, away_mode="off")
    subscribe(jwt_client(member), Browser(service, "julia"))
    settings.WEB_PUSH_PUBLIC_KEY, settings.WEB_PUSH_PRIVATE_KEY = new_key_pair()  # support made a new pair
    patient_writes("Oi")
    run_worker()
    assert service.to("julia") == [] and not PushSubscription.objects.exists()


def test_a_deactivated_members_device_is_kept_but_told_nothing(
    jwt_client, clinic, member, admin, service, whatsapp_channel
):
    set_hours(clinic, admin, OPEN_WEEK, away_mode="off")
    subscribe(jwt_client(member), Browser(service, "julia"))
    member.is_active = False
    member.save(update_fields=["is_active"])
    patient_writes("Oi")
    run_worker()
    assert service.to("julia") == []


@pytest.mark.parametrize("answered", [True, False])
def test_the_late_check_runs_at_the_target_and_tells_only_of_a_wait_still_running(
    jwt_client, clinic, member, admin, service, whatsapp_channel, answered
):
    from django.utils import timezone
    from django_tasks_db.models import DBTaskResult

    from conversations.actions.messages import send_outbound_message

    set_hours(clinic, admin, OPEN_WEEK, away_mode="off")  # a 15-minute target, open all week
    julia = Browser(service, "julia")
    subscribe(jwt_client(member), julia, assigned=False, unassigned=False, late=True)
    conversation = patient_writes("Oi")
    run_worker()  # the message's push: no one wants those; the late check is scheduled for the target
    late = DBTaskResult.objects.filter(task_path__endswith="send_push", args_kwargs__args__0="late")
    (scheduled,) = late
    assert scheduled.run_after > timezone.now() + timedelta(minutes=14)
    if answered:
        send_outbound_message(conversation=conversation, sender=member, content="Olá!")
    late.update(run_after=timezone.now())  # the target is reached
    run_worker()
    assert [julia.read(push)["kind"] for push in service.to("julia")] == ([] if answered else ["late"])
