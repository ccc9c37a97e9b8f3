"""Faults injected into real processes on loopback, each ending with what every client saw compared with
the database: a server process killed under its clients, the task worker killed in the middle of a send,
the disk filling up during an upload, PostgreSQL restarted under a running server. (Redis restarted under
live clients: realtime/tests/test_scale_out.py.)"""

import asyncio
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from channels.db import database_sync_to_async
from django.utils import timezone

from conftest import free_port
from conversations.actions.inbound import receive_inbound_message
from conversations.actions.messages import send_outbound_message
from conversations.models import DeliveryAttempt, Message, MessageAttachment, WhatsAppChannel
from realtime.models import Event
from realtime.tests.test_consumer import access_token
from realtime.tests.test_scale_out import Client, http_json, server_env

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parents[2]
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * (200 * 1024)


class Follower:
    """A staff screen that stays connected through the fault, in a thread of its own: after every drop it
    reconnects and resumes from its last seq (`Client` fails on any gap or duplicate on one connection)."""

    def __init__(self, host: str, token: str):
        self.client = Client(host, token)
        self.stopped, self.failure = threading.Event(), None
        self.thread = threading.Thread(target=lambda: asyncio.run(self._follow()), daemon=True)
        self.thread.start()

    async def _follow(self) -> None:
        while not self.stopped.is_set():
            try:
                await self.client.session(0.5)
            except AssertionError as failure:
                self.failure = failure
                return
            except Exception:  # the server or its database is away: try again, as the browser does
                await asyncio.sleep(0.3)

    def finish(self) -> Client:
        """Stop following, then one last resume to collect what is left."""
        self.stopped.set()
        self.thread.join(20)
        if self.failure is not None:
            raise self.failure
        asyncio.run(self.client.session(1.0))
        return self.client

    def statuses(self, message_id: int) -> list[str]:
        """The ticks this screen was told of for one message, in order."""
        return [
            frame["data"]["status"]
            for frame in self.client.frames
            if frame["type"] == "message:status" and frame["data"]["message_id"] == message_id
        ]


def logged_seqs(clinic_id: int) -> list[int]:
    return list(Event.objects.filter(clinic_id=clinic_id).order_by("seq").values_list("seq", flat=True))


# --- A server process killed under its clients -----------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.redis
async def test_a_killed_server_process_loses_no_client_anything(serve, clinic, member):
    """Clients on process A; patients' messages arrive through process B all along; A is SIGKILLed in the
    middle. Each client reconnects to B and resumes from its last seq: it ends with exactly the log."""
    await database_sync_to_async(
        lambda: WhatsAppChannel.objects.create(
            clinic=clinic, phone_number_id="demo-kill", access_token="s", app_secret="kill-secret", simulated=True
        )
    )()
    token = await database_sync_to_async(access_token)(member)
    doomed, survivor = serve(server_env()), serve(server_env())
    stream = subprocess.Popen(  # noqa: ASYNC220 (the webhooks, from another process, to the survivor)
        [sys.executable, "manage.py", "simulate_patients", "--url", f"http://{survivor}", "--clinic", clinic.slug]
        + ["--rate", "30", "--count", "90", "--patients", "6"],
        cwd=ROOT,
        env=server_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    clients = [Client(doomed, token) for _ in range(3)]
    killed = asyncio.get_running_loop().create_future()

    async def follow(client: Client) -> None:
        while stream.poll() is None:
            try:
                await client.session(0.5)
            except AssertionError:  # a gap or a duplicate: the failure this test is looking for
                raise
            except Exception:  # the process died under the socket: reconnect elsewhere
                await killed
            if killed.done():
                client.host = survivor

    async def kill_midway() -> None:
        deadline = time.monotonic() + 20
        while sum(len(client.seqs) for client in clients) < 3 * 20:  # each client well into the stream
            assert time.monotonic() < deadline, "the clients never received the patients' messages"
            await asyncio.sleep(0.02)
        serve.kill(doomed)
        killed.set_result(True)

    await asyncio.gather(kill_midway(), *(follow(c) for c in clients))
    assert await asyncio.to_thread(stream.wait, 30) == 0, stream.stderr.read().decode()
    for client in clients:
        await client.session(1.0)  # the last resume collects the tail
    logged = await database_sync_to_async(
        lambda: list(Event.objects.filter(clinic=clinic).order_by("seq").values_list("seq", flat=True))
    )()
    assert len(logged) >= 90
    for client in clients:
        assert client.seqs == logged, "every client ends with exactly the log: nothing lost, nothing twice"


# --- The worker killed in the middle of a send -----------------------------------------------------------


class SlowGraph(http.server.ThreadingHTTPServer):
    """Meta's Graph API on loopback, answering a send only after `delay` seconds, counting the sends."""

    def __init__(self, delay: float):
        self.delay, self.sends, self.received = delay, 0, threading.Event()
        graph = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (the standard library's name)
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                graph.sends += 1
                graph.received.set()
                time.sleep(graph.delay)
                body = json.dumps({"messaging_product": "whatsapp", "messages": [{"id": f"wamid.{graph.sends}"}]})
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.write(body.encode())
                except OSError:
                    pass  # the worker is gone

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v23.0"


def worker(env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "manage.py", "db_worker", "--no-reload", "--no-startup-delay", "--queue-name", "*"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.mark.postgres
@pytest.mark.redis
def test_a_worker_killed_mid_send_never_sends_twice(serve, clinic, member, settings):
    """The worker is SIGKILLed while Meta holds the send; the next worker must not send again. A screen
    connected all along ends with exactly the log, and shows the message as the database has it."""
    graph = SlowGraph(delay=3)
    WhatsAppChannel.objects.create(
        clinic=clinic, phone_number_id="106540352242922", access_token="EAAG-t", app_secret="s", verify_token="v"
    )
    conversation = receive_inbound_message(clinic=clinic, phone="5511987654321", content="Oi").conversation
    env = server_env(WHATSAPP_GRAPH_URL=graph.url, DELIVERY_IN_FLIGHT_SECONDS="2")
    screen = Follower(serve(server_env()), access_token(member))
    first = worker(env)
    message = send_outbound_message(conversation=conversation, sender=member, content="Sua consulta é amanhã").message
    try:
        assert graph.received.wait(20), "the worker never called Meta"
        first.kill()  # SIGKILL while Meta holds the request
        first.wait(10)
        # As if longer than a send may take (DELIVERY_IN_FLIGHT_SECONDS) had passed since the dead worker took
        # the task and began the attempt: both are then taken as interrupted, not as still running.
        from django_tasks_db.models import DBTaskResult

        long_ago = timezone.now() - timedelta(seconds=10)
        DeliveryAttempt.objects.filter(message=message).update(started_at=long_ago)
        DBTaskResult.objects.filter(status="RUNNING").update(started_at=long_ago)
        settings.DELIVERY_IN_FLIGHT_SECONDS = 2
        subprocess.run(
            [sys.executable, "manage.py", "recover_deliveries", "--older-than", "0", "--yes"],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
        )
        second = worker(env)
        try:
            deadline = time.monotonic() + 20
            while Message.objects.get(pk=message.pk).status == "pending" and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            second.kill()
            second.wait(10)
    finally:
        graph.shutdown()
    message.refresh_from_db()
    assert graph.sends == 1, "the patient must never get the message twice"
    assert message.status == "unknown" and "interrupted after WhatsApp was called" in message.error
    assert DeliveryAttempt.objects.get(message=message).outcome == "unknown"
    seen = screen.finish()
    assert seen.seqs == logged_seqs(clinic.pk), "the screen ends with exactly the log"
    assert screen.statuses(message.pk)[-1] == message.status == "unknown", "and shows the message as stored"


# --- The disk fills up during an upload ------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.usefixtures("simulated_number")
def test_a_full_disk_during_an_upload_is_a_clear_503_with_nothing_half_stored(serve, clinic, member, settings):
    """A server process that can write no file past 64 KiB (its writes fail there as on a full disk) takes
    a 200 KiB photo: a clear 503, no message, no partial file, and a connected screen sees nothing of it.
    A text sent next goes through, and the screen ends with exactly the log."""
    conversation = receive_inbound_message(clinic=clinic, phone="5511987654321", content="Oi").conversation
    host = serve(server_env(), file_size_limit=64 * 1024)
    token = access_token(member)
    screen = Follower(host, token)
    before = sorted(p for p in Path(settings.MEDIA_ROOT).rglob("*") if p.is_file())
    url = f"http://{host}/api/conversations/{conversation.pk}/messages/"

    boundary = "taskmed-upload"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="content"\r\n\r\nSeu exame\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="exame.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + PNG
        + f"\r\n--{boundary}--\r\n".encode()
    )
    upload = urllib.request.Request(
        url,
        data=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(upload, timeout=20)
    answer = json.loads(refused.value.read())
    assert refused.value.code == 503 and answer["code"] == "storage_unavailable"
    assert "nothing was sent" in answer["detail"]
    assert not Message.objects.filter(direction="outbound").exists() and not MessageAttachment.objects.exists()
    assert sorted(p for p in Path(settings.MEDIA_ROOT).rglob("*") if p.is_file()) == before, "no partial file"

    sent = http_json(url, token, {"content": "Pode enviar por aqui mesmo"})
    assert Message.objects.get(pk=sent["id"]).content == "Pode enviar por aqui mesmo"
    seen = screen.finish()  # its last resume collects whatever it had not seen yet
    assert seen.seqs == logged_seqs(clinic.pk), "the screen ends with exactly the log"
    shown = [f["data"]["message"]["content"] for f in seen.frames if f["type"] == "message:new"]
    assert shown == ["Oi", "Pode enviar por aqui mesmo"], "the refused upload never reached a screen"


# --- PostgreSQL restarted under running servers -----------------------------------------------------------

PG_BIN = Path("/usr/lib/postgresql")


@pytest.fixture
def private_postgres():
    """A PostgreSQL of this test's own (Debian's binaries), so it can be stopped and started under a server."""
    binaries = sorted(PG_BIN.glob("*/bin/pg_ctl"))
    if not binaries:
        pytest.fail("PostgreSQL's server binaries are needed (Debian: postgresql)")
    bin_dir = binaries[-1].parent
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    data = Path(tempfile.mkdtemp(prefix="taskmed-pg-"))  # not under pytest's folder, which postgres cannot enter
    if os.geteuid() == 0:
        shutil.chown(data, "postgres")
    run = lambda *args: subprocess.run([*as_postgres, *args], check=True, capture_output=True)  # noqa: E731
    run(str(bin_dir / "initdb"), "-D", str(data / "data"), "-A", "trust", "-U", "postgres", "--no-sync")
    port = free_port()
    options = f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off"

    def start() -> None:
        run(str(bin_dir / "pg_ctl"), "-D", str(data / "data"), "-o", options, "-l", str(data / "log"), "-w", "start")

    def stop() -> None:
        run(str(bin_dir / "pg_ctl"), "-D", str(data / "data"), "-m", "fast", "-w", "stop")

    start()
    subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-qc", "CREATE DATABASE taskmed"])
    yield f"postgres://postgres@127.0.0.1:{port}/taskmed", stop, start
    subprocess.run([*as_postgres, str(bin_dir / "pg_ctl"), "-D", str(data / "data"), "-m", "immediate", "stop"])
    shutil.rmtree(data, ignore_errors=True)


SEED = """
import json, django
django.setup()
from conversations.actions.demo import seed_bench_clinics
from conversations.management.commands.listen import Command
clinic = seed_bench_clinics(1)[0]
token = Command().issue_token(clinic.username, clinic.slug)
print(json.dumps({"token": token, "number": clinic.phone_number_id, "secret": clinic.app_secret}))
"""


@pytest.mark.postgres
def test_a_postgresql_restart_is_503s_while_down_and_success_after_with_no_server_restart(serve, private_postgres):
    from conftest import clean_env
    from conversations.management.commands.simulate_patients import notification
    from conversations.webhooks.whatsapp import signature_of

    url, stop_postgres, start_postgres = private_postgres
    env = clean_env(DATABASE_URL=url, DB_POOL_TIMEOUT="2", DJANGO_SETTINGS_MODULE="taskmed.settings")
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    seeded = subprocess.run([sys.executable, "-c", SEED], cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    bench = json.loads(seeded.stdout.strip().splitlines()[-1])
    host = serve(env)
    screen = Follower(host, bench["token"])

    def request(path: str, body: bytes | None = None, headers: dict | None = None) -> tuple[int, dict]:
        try:
            with urllib.request.urlopen(
                urllib.request.Request(f"http://{host}{path}", data=body, headers=headers or {}), timeout=20
            ) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as refused:
            return refused.code, json.loads(refused.read())

    def webhook(n: int) -> int:
        body = json.dumps(notification(bench["number"], f"mensagem {n}", n, phone="5511900000001", name="P")).encode()
        signed = {"Content-Type": "application/json", "X-Hub-Signature-256": signature_of(body, bench["secret"])}
        return request("/webhooks/whatsapp/", body, signed)[0]

    def listed() -> tuple[int, dict]:
        return request("/api/conversations/", headers={"Authorization": f"Bearer {bench['token']}"})

    assert webhook(1) == 200 and listed()[0] == 200
    stop_postgres()
    assert webhook(2) == 503, "Meta retries what was not stored"
    status, body = listed()
    assert status == 503 and body["code"] == "unavailable"
    start_postgres()
    deadline = time.monotonic() + 20
    while webhook(2) != 200:  # Meta's retry, until the database answers again
        assert time.monotonic() < deadline, "the server never recovered by itself"
        time.sleep(0.5)
    while (answer := listed())[0] != 200:  # the pool may still be refilling for a moment
        assert time.monotonic() < deadline, "the API never recovered by itself"
        time.sleep(0.5)
    status, body = answer
    assert status == 200 and body["results"][0]["last_message"]["content"] == "mensagem 2"
    assert serve.alive(host), "the same server process, never restarted"
    assert webhook(3) == 200
    seen = screen.finish()  # its last resume collects whatever it had not seen yet
    with psycopg.connect(url) as database:
        logged = [seq for (seq,) in database.execute("SELECT seq FROM realtime_event ORDER BY seq")]
    assert seen.seqs == logged and len(logged) >= 3, "the screen, connected through it all, ends with the log"
    shown = [f["data"]["message"]["content"] for f in seen.frames if f["type"] == "message:new"]
    assert shown == ["mensagem 1", "mensagem 2", "mensagem 3"], "each message once, the retried one included"


STAFF_SEED = """
import django
django.setup()
from django.contrib.auth import get_user_model
from conversations.models import Clinic, Membership
user = get_user_model().objects.create_user("recepcao.falha", password="senha-de-teste-123")
Membership.objects.create(user=user, clinic=Clinic.objects.get(slug="bench-1"), role="receptionist")
"""


@pytest.mark.postgres
def test_with_postgresql_away_every_request_is_a_503_at_once_after_the_first_and_recovers_by_itself(
    serve, private_postgres
):
    """Not the pool's wait (DB_POOL_TIMEOUT) per request, holding a worker thread each: once the database
    is found away, the API, logins, pages and the webhook answer 503 at once, while a probe looks for it."""
    import httpx

    from conftest import clean_env
    from conversations.management.commands.simulate_patients import notification
    from conversations.webhooks.whatsapp import signature_of

    url, stop_postgres, start_postgres = private_postgres
    env = clean_env(
        DATABASE_URL=url, DB_POOL_TIMEOUT="5", METRICS_TOKEN="scraper", DJANGO_SETTINGS_MODULE="taskmed.settings"
    )
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    seeded = subprocess.run([sys.executable, "-c", SEED], cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    bench = json.loads(seeded.stdout.strip().splitlines()[-1])
    subprocess.run([sys.executable, "-c", STAFF_SEED], cwd=ROOT, env=env, check=True)

    def reachable() -> str:
        scraped = httpx.get(f"http://{host}/metrics", headers={"Authorization": "Bearer scraper"}, timeout=30).text
        return next(line for line in scraped.splitlines() if line.startswith("taskmed_database_reachable "))

    host = serve(env)
    browser = httpx.Client(base_url=f"http://{host}", timeout=30)
    browser.get("/accounts/login/")
    form = {"username": "recepcao.falha", "password": "senha-de-teste-123"}
    signed_in = browser.post("/accounts/login/", data=form | {"csrfmiddlewaretoken": browser.cookies["csrftoken"]})
    assert signed_in.status_code == 302
    api = httpx.Client(base_url=f"http://{host}", timeout=30, headers={"Authorization": f"Bearer {bench['token']}"})
    body = json.dumps(notification(bench["number"], "durante a queda", 1, phone="5511900000001")).encode()
    webhook_headers = {"Content-Type": "application/json", "X-Hub-Signature-256": signature_of(body, bench["secret"])}

    calls = {
        "the API": lambda: api.get("/api/conversations/"),
        "an API login": lambda: httpx.post(
            f"http://{host}/api/auth/token/", json={"username": "recepcao.falha", "password": "x"}, timeout=30
        ),
        "a page": lambda: browser.get("/inbox/"),
        "the webhook": lambda: httpx.post(f"http://{host}/webhooks/whatsapp/", content=body, headers=webhook_headers),
    }
    assert [calls[name]().status_code for name in ("the API", "a page")] == [200, 200]

    stop_postgres()
    assert api.get("/api/conversations/").status_code == 503  # this one finds it away (up to the pool's wait)
    for name, call in calls.items():
        started = time.monotonic()
        answer = call()
        waited = time.monotonic() - started
        assert answer.status_code == 503, (name, answer.status_code, answer.text[:200])
        assert waited < 2.5, f"{name} waited {waited:.1f} s: it must answer at once, not after DB_POOL_TIMEOUT (5 s)"
    assert reachable() == "taskmed_database_reachable 0.0", "operators see it on /metrics"

    start_postgres()
    deadline = time.monotonic() + 30
    while api.get("/api/conversations/").status_code != 200:
        assert time.monotonic() < deadline, "the server never found the database again by itself"
        time.sleep(0.2)  # the probe looks every second; each request answers at once meanwhile
    assert browser.get("/inbox/").status_code == 200 and calls["the webhook"]().status_code == 200
    assert reachable() == "taskmed_database_reachable 1.0"
    assert serve.alive(host), "the same server process, never restarted"
