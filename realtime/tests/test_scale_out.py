"""Across real server processes sharing PostgreSQL and Redis: delivery crosses processes, clients that drop
and resume while another process publishes end with exactly the log, and a Redis restart leaves no client
connected but deaf."""

import asyncio
import contextlib
import json
import random
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from channels.db import database_sync_to_async
from django.conf import settings
from websockets.asyncio.client import connect

from conftest import APP_SECRET, clean_env, free_port, whatsapp_payload
from conversations.actions.inbound import receive_inbound_message
from conversations.actions.support import set_channel_credentials
from conversations.models import Membership, WhatsAppChannel
from conversations.webhooks.whatsapp import signature_of
from realtime import presence
from realtime.models import Event
from realtime.tests.test_consumer import access_token, forget_presence

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parents[2]


def server_env(redis_url: str | None = None, **extra) -> dict:
    """What a production process gets: this test's database and Redis, the same signing key."""
    db = settings.DATABASES["default"]
    host = f"{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
    return clean_env(
        DATABASE_URL=f"postgres://{db['USER'] or 'postgres'}@{host}/{db['NAME']}",
        REDIS_URL=redis_url or settings.REDIS_URL,
        REDIS_PREFIX=settings.REDIS_PREFIX,
        **extra,
    )


@pytest.fixture(autouse=True)
def no_stale_presence(settings):
    forget_presence(settings)


class Client:
    """A WebSocket client that resumes after each drop and checks the server's promise (DESIGN §4): on one
    connection, the replay and then the live frames come in seq order, with no gap and no duplicate."""

    def __init__(self, host: str, token: str):
        self.host, self.token = host, token
        self.seqs: list[int] = []  # every durable seq received, across sessions
        self.frames: list[dict] = []
        self.sessions = 0

    async def session(self, seconds: float, resume: bool = True) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        self.sessions += 1
        query = f"?after={self.seqs[-1] if self.seqs else 0}" if resume else ""
        url = f"ws://{self.host}/ws/{query}"
        async with connect(url, additional_headers=headers, origin=f"http://{self.host}") as ws:
            hello = json.loads(await ws.recv())
            assert hello["type"] == "hello"
            deadline = time.monotonic() + seconds
            while (left := deadline - time.monotonic()) > 0:
                try:
                    frame = json.loads(await asyncio.wait_for(ws.recv(), left))
                except TimeoutError:
                    break
                self.frames.append(frame)
                if frame.get("seq") is not None and frame["type"] not in ("hello", "pong", "resumed", "resync"):
                    assert not self.seqs or frame["seq"] == self.seqs[-1] + 1, (
                        f"gap or duplicate: {self.seqs[-3:]} then {frame['seq']}"
                    )
                    self.seqs.append(frame["seq"])

    async def wait_for(self, predicate, seconds: float) -> dict:
        headers = {"Authorization": f"Bearer {self.token}"}
        async with connect(f"ws://{self.host}/ws/", additional_headers=headers, origin=f"http://{self.host}") as ws:
            await ws.recv()
            return await self._until(ws, predicate, seconds)

    async def _until(self, ws, predicate, seconds):
        deadline = time.monotonic() + seconds
        while True:
            frame = json.loads(await asyncio.wait_for(ws.recv(), max(0.01, deadline - time.monotonic())))
            if predicate(frame):
                return frame


def http_json(url: str, token: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode() if body else None,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.mark.usefixtures("simulated_number")
async def test_a_message_posted_through_one_process_reaches_a_client_of_the_other(serve, clinic, member):
    conversation = await database_sync_to_async(
        lambda: receive_inbound_message(clinic=clinic, phone="5511987654321", content="Oi").conversation
    )()
    token = await database_sync_to_async(access_token)(member)
    one, two = serve(server_env()), serve(server_env())
    listener = Client(two, token)
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        connect(f"ws://{two}/ws/", additional_headers=headers, origin=f"http://{two}") as ws_two,
        connect(f"ws://{one}/ws/", additional_headers=headers, origin=f"http://{one}") as ws_one,
    ):
        await ws_two.recv(), await ws_one.recv()
        body = {"content": "Enviada pelo processo um", "client_id": "8a4f2c1e-1111-4e5b-9c3d-2f6a7b8c9d0e"}
        await asyncio.to_thread(http_json, f"http://{one}/api/conversations/{conversation.pk}/messages/", token, body)
        frame = await listener._until(ws_two, lambda f: f["type"] == "message:new", 5)
        assert frame["data"]["message"]["content"] == "Enviada pelo processo um"

        online = await asyncio.to_thread(http_json, f"http://{one}/api/presence/", token)
        assert [u["id"] for u in online["online"]] == [member.pk]
        counts = await presence.connection_counts()
        assert counts.get(clinic.pk) == 2, "presence counts the connections of both processes"


def status_of(url: str, token: str) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})) as r:
            return r.status
    except urllib.error.HTTPError as error:
        return error.code


async def test_a_membership_removed_elsewhere_ends_api_access_in_every_process(serve, clinic, member):
    """A server process remembers a token's checks between requests; a removal made by another process
    reaches it as a control message over Redis and is honoured at once (not after the memory's 30 s)."""
    token = await database_sync_to_async(access_token)(member)
    hosts = [serve(server_env()), serve(server_env())]
    for host in hosts:
        assert await asyncio.to_thread(status_of, f"http://{host}/api/conversations/", token) == 200
    await database_sync_to_async(lambda: Membership.objects.filter(user=member).delete())()
    deadline = time.monotonic() + 2
    refused: dict[str, int] = {}
    while len(refused) < len(hosts) and time.monotonic() < deadline:
        for host in hosts:
            if await asyncio.to_thread(status_of, f"http://{host}/api/conversations/", token) == 401:
                refused.setdefault(host, round(time.monotonic() - deadline + 2, 3))
    assert set(refused) == set(hosts), f"still allowed after 2 s on {set(hosts) - set(refused)}"


async def test_a_secret_rotated_elsewhere_is_honoured_by_every_process_at_once(serve, clinic, member, whatsapp_channel):
    """Each server process holds the webhook's secrets in memory; support rotating one in another process
    reaches them as a control message: the old secret is refused, the new one accepted, within 2 s."""
    hosts = [serve(server_env()), serve(server_env())]
    body = json.dumps(whatsapp_payload("text")).encode()

    def post(host: str, secret: str) -> int:
        headers = {"Content-Type": "application/json", "X-Hub-Signature-256": signature_of(body, secret)}
        request = urllib.request.Request(f"http://{host}/webhooks/whatsapp/", data=body, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=20) as answer:
                return answer.status
        except urllib.error.HTTPError as error:
            return error.code

    for host in hosts:
        assert await asyncio.to_thread(post, host, APP_SECRET) == 200  # the secrets are now held in memory
    whatsapp_channel.app_secret = "rotated-app-secret-0123456789abcd"
    await database_sync_to_async(set_channel_credentials)(whatsapp_channel, actor=member, editable=["app_secret"])
    deadline = time.monotonic() + 2
    pending = set(hosts)
    while pending and time.monotonic() < deadline:
        for host in list(pending):
            old, new = (
                await asyncio.to_thread(post, host, APP_SECRET),
                await asyncio.to_thread(post, host, "rotated-app-secret-0123456789abcd"),
            )
            if (old, new) == (403, 200):
                pending.discard(host)
    assert not pending, f"the old secret still accepted, or the new one refused, after 2 s on {pending}"


async def test_clients_dropping_and_resuming_during_a_stream_end_with_exactly_the_log(serve, clinic, member):
    await database_sync_to_async(
        lambda: WhatsAppChannel.objects.create(
            clinic=clinic,
            phone_number_id="demo-stream",
            access_token="simulated",
            app_secret="stream-secret",
            verify_token="v",
            simulated=True,
        )
    )()
    token = await database_sync_to_async(access_token)(member)
    hosts = [serve(server_env()), serve(server_env())]
    # The stream comes from another process: signed webhooks, as Meta would post them.
    stream = subprocess.Popen(  # noqa: ASYNC220 (started once; the test awaits the clients meanwhile)
        [
            sys.executable,
            "manage.py",
            "simulate_patients",
            "--url",
            f"http://{hosts[0]}",
            "--clinic",
            clinic.slug,
            "--rate",
            "40",
            "--count",
            "120",
            "--patients",
            "8",
        ],
        cwd=ROOT,
        env=server_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    rng = random.Random(7)
    clients = [Client(rng.choice(hosts), token) for _ in range(4)]

    async def churn(client: Client) -> None:
        while stream.poll() is None:
            client.host = rng.choice(hosts)  # reconnect to either process
            await client.session(rng.uniform(0.1, 0.6))
            await asyncio.sleep(rng.uniform(0, 0.3))  # disconnected: events published now are missed live

    await asyncio.gather(*(churn(c) for c in clients))
    assert await asyncio.to_thread(stream.wait, 30) == 0, stream.stderr.read().decode()
    for client in clients:
        await client.session(1.0)  # a last resume collects the tail
    logged = await database_sync_to_async(
        lambda: list(Event.objects.filter(clinic=clinic).order_by("seq").values_list("seq", flat=True))
    )()
    assert len(logged) >= 120
    for client in clients:
        assert client.sessions >= 4, "each client must have dropped and resumed several times during the stream"
        assert client.seqs == logged, "every client ends with exactly the log, nothing twice"


@pytest.fixture
def private_redis():
    """A Redis of this test's own, so it can be restarted under live clients."""
    if not shutil.which("redis-server"):
        pytest.fail("redis-server is needed to restart Redis under live clients")
    port = free_port()

    def start() -> subprocess.Popen:
        process = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        for _ in range(100):
            if (
                subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True).stdout.strip()
                == "PONG"
            ):
                return process
            time.sleep(0.05)  # redis-server has no readiness signal but answering PING
        raise RuntimeError("the private redis-server did not start")

    state = {"process": start()}

    def restart(while_down=None) -> None:
        state["process"].kill()
        state["process"].wait(timeout=5)
        if while_down is not None:
            while_down()
        state["process"] = start()

    yield f"redis://127.0.0.1:{port}/0", restart
    state["process"].kill()
    state["process"].wait(timeout=5)


@contextlib.asynccontextmanager
async def client_of_a_server(serve, member, redis_url: str, **env):
    """A server process on this test's database and `redis_url`, and a client of `member` on it, greeted."""
    token = await database_sync_to_async(access_token)(member)
    host = serve(server_env(redis_url, **env))
    headers = {"Authorization": f"Bearer {token}"}
    async with connect(f"ws://{host}/ws/", additional_headers=headers, origin=f"http://{host}") as ws:
        await ws.recv()
        yield host, token, ws


@pytest.mark.faults
async def test_after_a_redis_restart_a_client_gets_what_was_published_meanwhile_within_5_seconds(
    serve, private_redis, clinic, member
):
    """Redis restarts while a client is connected, and another process commits an event while it is down
    (its broadcast is lost; the server itself commits nothing, so nothing it does locally brings the event
    in). Once Redis is back, the server's hub notices its subscription dropped and catches up from the log:
    the client gets the event within 5 s, on the same socket. The hub's periodic look at the log is turned
    off here, so only the reconnect can bring it."""
    redis_url, restart_redis = private_redis
    await database_sync_to_async(
        lambda: receive_inbound_message(clinic=clinic, phone="5511987654321", content="Oi").conversation
    )()
    async with client_of_a_server(serve, member, redis_url, REALTIME_LOG_CHECK_SECONDS="3600") as (host, token, ws):

        def published_while_redis_is_down():
            # This process publishes to another Redis than the server's: for the server, the poke is lost.
            receive_inbound_message(clinic=clinic, phone="5511987654321", content="Durante a queda")
            # The server keeps working without Redis: the API answers from the database.
            listed = http_json(f"http://{host}/api/conversations/", token)
            assert listed["results"] and listed["results"][0]["contact"]["phone"] == "5511987654321"

        await asyncio.to_thread(restart_redis, published_while_redis_is_down)
        back = time.monotonic()
        frame = await Client(host, token)._until(ws, lambda f: f.get("seq") is not None, 5)
        assert frame["data"]["message"]["content"] == "Durante a queda"
        assert time.monotonic() - back < 5
        logged = await database_sync_to_async(
            lambda: list(Event.objects.filter(clinic=clinic, seq__gt=2).values_list("seq", flat=True))
        )()
        assert [frame["seq"]] == logged, "the client's view ends equal to the log: nothing lost"


@pytest.mark.faults
async def test_with_redis_down_a_webhook_is_stored_and_reaches_the_servers_own_screens(
    serve, private_redis, clinic, member, whatsapp_channel
):
    """Without Redis the server still stores a signed webhook and answers 200 (its broadcast to other
    processes fails; the log has it), and its own connected screens get the frame at once."""
    redis_url, restart_redis = private_redis
    async with client_of_a_server(serve, member, redis_url, REALTIME_LOG_CHECK_SECONDS="3600") as (host, token, ws):
        frames = []

        def webhook_while_redis_is_down():
            body = json.dumps(whatsapp_payload("text")).encode()
            signed = {"Content-Type": "application/json", "X-Hub-Signature-256": signature_of(body, APP_SECRET)}
            request = urllib.request.Request(f"http://{host}/webhooks/whatsapp/", data=body, headers=signed)
            with urllib.request.urlopen(request, timeout=20) as answer:
                assert answer.status == 200

            async def until_the_message():
                while True:
                    frame = await Client(host, token)._until(ws, lambda f: f.get("seq") is not None, 5)
                    frames.append(frame)
                    if frame["type"] == "message:new":
                        return

            asyncio.run_coroutine_threadsafe(until_the_message(), loop).result(timeout=10)

        loop = asyncio.get_running_loop()
        await asyncio.to_thread(restart_redis, webhook_while_redis_is_down)
        assert frames[-1]["data"]["message"]["content"] == "Does it come in another color?"
        logged = await database_sync_to_async(
            lambda: list(Event.objects.filter(clinic=clinic).order_by("seq").values_list("seq", flat=True))
        )()
        assert [f["seq"] for f in frames] == logged


async def test_an_event_the_bus_never_carried_arrives_from_the_log(serve, private_redis, clinic, member):
    """A broadcast lost without the subscription dropping (or a write by a process with no bus) is found by
    the hub's look at the log, within REALTIME_LOG_CHECK_SECONDS."""
    redis_url, _restart = private_redis
    async with client_of_a_server(serve, member, redis_url, REALTIME_LOG_CHECK_SECONDS="1") as (host, token, ws):
        await database_sync_to_async(receive_inbound_message)(clinic=clinic, phone="5511987654321", content="Sem aviso")
        frame = await Client(host, token)._until(ws, lambda f: f["type"] == "message:new", 4)
        assert frame["data"]["message"]["content"] == "Sem aviso"


@pytest.mark.usefixtures("simulated_number")
async def test_listen_prints_the_backlog_and_live_frames_in_seq_order(serve, clinic, member):
    conversation = await database_sync_to_async(
        lambda: receive_inbound_message(clinic=clinic, phone="5511987654321", content="antes").conversation
    )()
    token = await database_sync_to_async(access_token)(member)
    host = serve(server_env())
    listener = await asyncio.create_subprocess_exec(
        sys.executable,
        "manage.py",
        "listen",
        "--url",
        f"http://{host}",
        "--user",
        member.username,
        "--after",
        "0",
        "--max-frames",
        "7",
        "--seconds",
        "20",
        cwd=ROOT,
        env=server_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    lines = []
    while '"seq":2' not in "".join(lines).replace(" ", ""):  # the backlog has arrived
        line = (await asyncio.wait_for(listener.stdout.readline(), 20)).decode()
        assert line, (await listener.stderr.read()).decode()
        lines.append(line)
    await asyncio.to_thread(
        http_json, f"http://{host}/api/conversations/{conversation.pk}/messages/", token, {"content": "ao vivo"}
    )
    out, err = await asyncio.wait_for(listener.communicate(), 20)
    frames = [json.loads(line) for line in lines + out.decode().splitlines() if line.strip()]
    assert listener.returncode == 0, err.decode()
    assert frames[0]["type"] == "hello"
    durable = [f for f in frames if f.get("seq") and f["type"] not in ("hello", "resumed", "pong")]
    assert [f["seq"] for f in durable] == [1, 2, 3, 4]  # the first staff reply: who answers changes, then it
    assert durable[-2]["type"] == "conversation:updated" and durable[-2]["data"]["changed"] == ["answered_by"]
    assert durable[-1]["type"] == "message:new" and durable[-1]["data"]["message"]["content"] == "ao vivo"
