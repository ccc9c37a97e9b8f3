"""Fixtures shared by every app's tests, and the rule that service-backed tests cannot be skipped in CI."""

import asyncio
import os
import resource
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from django.conf import settings

from conversations.models import Clinic, Membership, Role
from taskmed.serve import command as server_command

REQUIRE_SERVICES = os.environ.get("TASKMED_REQUIRE_SERVICES") == "1"


def pytest_runtest_setup(item: pytest.Item) -> None:
    missing = []
    if item.get_closest_marker("postgres") and settings.DATABASES["default"]["ENGINE"] != "taskmed.postgresql":
        missing.append("PostgreSQL (set DATABASE_URL)")
    if item.get_closest_marker("redis") and not settings.REDIS_URL:
        missing.append("Redis (set REDIS_URL)")
    if missing:
        reason = "needs " + " and ".join(missing)
        if REQUIRE_SERVICES:
            pytest.fail(f"{reason}: TASKMED_REQUIRE_SERVICES=1 forbids skipping it")
        pytest.skip(reason)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """A failed test that ran real processes (servers, the worker) shows the end of each one's log: what a
    CI run on a loaded machine has to tell about a flaky timing is there, not in a tmp dir gone with it."""
    report = yield
    tmp_path = getattr(item, "funcargs", {}).get("tmp_path")
    if report.when in ("setup", "call") and report.failed and tmp_path is not None:
        for log in sorted(Path(tmp_path).glob("*.log")):
            report.sections.append((f"{log.name}, its last 4,000 characters", log.read_text(errors="replace")[-4000:]))
    return report


@pytest.fixture
def make_clinic(db):
    counter = iter(range(1, 10_000))

    def make(name: str | None = None, **fields) -> Clinic:
        n = next(counter)
        name = name or f"Clínica {n}"
        return Clinic.objects.create(name=name, slug=fields.pop("slug", f"clinica-{n}"), **fields)

    return make


@pytest.fixture
def clinic(make_clinic) -> Clinic:
    return make_clinic("Clínica Aurora", slug="aurora")


@pytest.fixture
def other_clinic(make_clinic) -> Clinic:
    return make_clinic("Clínica Boreal", slug="boreal")


@pytest.fixture
def make_member(db, django_user_model):
    counter = iter(range(1, 10_000))

    def make(clinic: Clinic, role: str = Role.RECEPTIONIST, **fields):
        n = next(counter)
        user = django_user_model.objects.create_user(
            username=fields.pop("username", f"staff{n}"), password="senha-de-teste-123", **fields
        )
        Membership.objects.create(user=user, clinic=clinic, role=role)
        return user

    return make


@pytest.fixture
def member(clinic, make_member):
    return make_member(clinic, Role.RECEPTIONIST, first_name="Júlia", last_name="Carvalho")


@pytest.fixture
def outsider(other_clinic, make_member):
    return make_member(other_clinic, Role.ADMIN)


@pytest.fixture(scope="session", autouse=True)
def close_database_threads(django_db_setup, django_db_blocker):
    """realtime.db's threads keep their connections open: close them before the test database goes. So
    does asgiref's own thread, where an async test's client logged in: those sessions end here too."""
    yield
    from django.db import connection

    from realtime import db

    with django_db_blocker.unblock():
        db.close_connections()
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )


@pytest.fixture(autouse=True)
async def stream_stopped(request):
    """A test that opens sockets or posts to the webhook gets a hub and loop connections on its own event
    loop: they are stopped, and the database calls finished, before that loop closes and before the
    test's database is emptied."""
    if "transactional_db" in request.fixturenames or request.node.get_closest_marker("django_db"):
        request.getfixturevalue("transactional_db" if _transactional(request) else "db")
    yield
    from realtime import db, hub, presence

    await hub.stop()
    await db.close_loop_connections()
    await asyncio.to_thread(db.wait_idle)
    presence.reset_store()


def _transactional(request) -> bool:
    marker = request.node.get_closest_marker("django_db")
    return "transactional_db" in request.fixturenames or bool(marker and marker.kwargs.get("transaction"))


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    # Hashing with the production hasher costs ~0.3 s a user; tests create many users.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def media_in_tmp(settings, tmp_path_factory):
    """Uploads and downloaded attachments go to a temporary folder, never into the checkout's media/."""
    settings.MEDIA_ROOT = tmp_path_factory.mktemp("media")


@pytest.fixture(autouse=True)
def empty_cache():
    """Each test starts with no throttle counts and no cached reads, even on a Redis kept between runs."""
    from django.core.cache import cache

    from conversations import clinic_hours, read_cache
    from conversations.actions import inbound_fast
    from conversations.webhooks import strangers, whatsapp_channels

    clinic_hours.forget()  # hours of an earlier test's clinic (whose id may come again)
    whatsapp_channels.forget()  # channels of an earlier test were truncated away, with no signal
    strangers.refusals.forget()  # an earlier test's forged requests do not count against this one's
    inbound_fast.forget_snapshots()
    if hasattr(cache, "delete_pattern"):
        cache.delete_pattern("*")  # only this installation's prefix
    else:
        cache.clear()
    read_cache.reset_stats()
    yield


@pytest.fixture
def jwt_client(db):
    """An API client holding a fresh access token of `user` for `clinic` (its only clinic by default)."""
    from rest_framework.test import APIClient

    def make(user, clinic=None):
        client = APIClient()
        body = {"username": user.username, "password": "senha-de-teste-123"}
        if clinic is not None:
            body["clinic_id"] = clinic.pk
        response = client.post("/api/auth/token/", body, format="json")
        assert response.status_code == 200, response.content
        client.tokens = response.json()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {client.tokens['access']}")
        return client

    return make


WHATSAPP_FIXTURES = Path(__file__).parent / "conversations/tests/fixtures/whatsapp"
APP_SECRET = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"


@pytest.fixture
def whatsapp_channel(clinic):
    """A real (not simulated) channel with the number id of the recorded payloads."""
    from conversations.models import WhatsAppChannel

    return WhatsAppChannel.objects.create(
        clinic=clinic,
        phone_number_id="106540352242922",
        display_phone_number="+1 555-078-3881",
        access_token="EAAG-test-token",
        app_secret=APP_SECRET,
        verify_token="verifica-123",
    )


@pytest.fixture
def simulated_number(clinic):
    """A number of the demo's kind (explicitly simulated): the clinic's replies go to the simulator, which
    marks them sent, delivered and read. A clinic with no number at all sends nothing."""
    from conversations.models import WhatsAppChannel

    return WhatsAppChannel.objects.create(
        clinic=clinic,
        phone_number_id=f"simulated-{clinic.slug}",
        access_token="simulated",
        app_secret=f"simulated-secret-{clinic.slug}",
        verify_token=f"simulated-{clinic.slug}",
        simulated=True,
    )


@pytest.fixture
def whatsapp_post(client):
    """POST a payload (a fixture name, a dict or raw bytes) to the webhook, signed like Meta does."""
    import json

    from conversations.webhooks.whatsapp import signature_of

    def post(payload, *, secret: str | None = APP_SECRET, signature: str | None = None):
        if isinstance(payload, str):
            payload = whatsapp_payload(payload)
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        headers = {}
        if signature is not None or secret is not None:
            headers["HTTP_X_HUB_SIGNATURE_256"] = signature or signature_of(body, secret)
        return client.post("/webhooks/whatsapp/", body, content_type="application/json", **headers)

    return post


def whatsapp_payload(name: str) -> dict:
    """A recorded notification, in the shape Meta documents (conversations/tests/fixtures/whatsapp/)."""
    import json

    return json.loads((WHATSAPP_FIXTURES / f"{name}.json").read_text())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _limit_file_size(limit: int) -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # kept across exec: a write past the limit fails (EFBIG)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


@pytest.fixture
def serve(tmp_path):
    """Start real uvicorn processes of the app on free loopback ports; stopped after the test.

    Their output goes to files (an unread pipe fills up and blocks a busy server); a server that fails to
    start shows the end of its own.
    """
    servers = []

    def start(env: dict[str, str], port: int | None = None, file_size_limit: int | None = None) -> str:
        """`file_size_limit`: the process may write no file past that many bytes (RLIMIT_FSIZE, with
        SIGXFSZ ignored): its writes then fail as they do on a full disk."""
        port = port or free_port()
        log_path = tmp_path / f"server-{port}.log"
        log = log_path.open("wb")
        server = subprocess.Popen(
            server_command("--host", "127.0.0.1", "--port", str(port), "--timeout-graceful-shutdown", "2"),
            cwd=Path(__file__).parent,
            env={**env, "PYTHONUNBUFFERED": "1"},
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=None if file_size_limit is None else lambda: _limit_file_size(file_size_limit),
        )
        log.close()  # the child has its own copy
        servers.append(server)
        by_host[f"127.0.0.1:{port}"] = server
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and server.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return f"127.0.0.1:{port}"
            except OSError:
                time.sleep(0.1)  # the port opens once the app has loaded; there is nothing to await
        pytest.fail(f"the server did not start: {log_path.read_text()[-2000:]}")

    by_host: dict[str, subprocess.Popen] = {}

    def stop(host: str) -> None:
        """Stop one server as a deploy would (SIGTERM); `start(env, port)` brings it back on its port."""
        server = by_host.pop(host)
        server.terminate()
        server.wait(timeout=10)

    def kill(host: str) -> None:
        """Kill one server outright (SIGKILL: no goodbye to its sockets, as in a crash)."""
        server = by_host.pop(host)
        server.kill()
        server.wait(timeout=10)

    def alive(host: str) -> bool:
        return by_host[host].poll() is None

    start.stop = stop
    start.kill = kill
    start.alive = alive
    yield start
    for server in servers:
        server.terminate()
    for server in servers:
        try:
            server.wait(timeout=5)
        except subprocess.TimeoutExpired:
            server.kill()  # it must not outlive the test: it holds the test database open
            server.wait(timeout=5)


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of a first try on a fresh machine: no configuration, but media in the test's folder."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "SYSTEMROOT")}
    env["MEDIA_ROOT"] = str(settings.MEDIA_ROOT)  # a test's temporary folder (media_in_tmp), not the checkout's
    return {**env, **extra}
