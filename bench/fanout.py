"""Fan-out: many WebSocket clients over several clinics while signed webhooks arrive at a steady rate.

DESIGN §10's setup: 1,000 clients over 10 clinics, 100 webhooks a second (each one's `message:new` goes to
the 100 clients of its clinic: 10,000 frames a second), one server process. From the project root, with
PostgreSQL and Redis:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/taskmed REDIS_URL=redis://127.0.0.1:6379/0 \\
        .venv/bin/python bench/fanout.py --clients 1000 --clinics 10 --rate 100 --seconds 20

It migrates the database, creates (once) the clinics `bench-1…N`, each with a receptionist and a simulated
WhatsApp channel, starts its own uvicorn process with the production flags (Makefile), connects the
clients, posts the webhooks open-loop from this process, and prints one JSON line: the latency from each
POST to each client's frame, the frames lost, frames out of seq order, the connect rate, and the server's
CPU and memory per connection. `make bench` runs it. Traffic goes to 127.0.0.1 only.
"""

import argparse
import asyncio
import gc
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "taskmed.settings")

from taskmed import serve  # noqa: E402  (after the path above)


def production_env(*needed: str) -> None:
    """Production mode, as served (the server started here inherits it), with the services it needs; this
    process signs the clients' tokens with the server's key."""
    if missing := [name for name in needed if not os.environ.get(name)]:
        raise SystemExit(f"Set {' and '.join(missing)}: the benchmark measures the production setup.")
    os.environ.update(DEBUG="0", ALLOWED_HOSTS="127.0.0.1", LOG_LEVEL="WARNING")
    os.environ["SECRET_KEY"] = os.environ.get("SECRET_KEY") or "bench" * 12


def prepare(clinics: int) -> list[tuple[str, str, str]]:
    """(token, phone number id, app secret) of each bench clinic."""
    import django

    django.setup()
    from django.core.management import call_command

    from conversations.actions.demo import seed_bench_clinics

    call_command("migrate", verbosity=0)
    from conversations.management.commands.listen import Command

    issue = Command().issue_token
    return [(issue(c.username, c.slug), c.phone_number_id, c.app_secret) for c in seed_bench_clinics(clinics)]


def raise_file_limit() -> None:
    """Each connection is a file descriptor; the usual soft limit of 1,024 is too few."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def start_server(port: int) -> subprocess.Popen:
    server = subprocess.Popen(
        serve.command("--port", str(port), "--no-access-log", "--log-level", "warning"),
        cwd=ROOT,
        env=os.environ,
        preexec_fn=raise_file_limit,
    )
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return server
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise SystemExit("the server did not start")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Run:
    def __init__(self, clinics: list[tuple[str, str, str]], per_clinic: int):
        self.clinics = clinics
        self.per_clinic = per_clinic
        self.sent: dict[str, float] = {}  # content → when its POST started
        self.latencies: list[float] = []  # POST started → frame received, ms
        self.post_ms: list[float] = []  # POST started → 200 received
        self.since_publish: list[float] = []  # the event's `at` (in its transaction) → frame received
        self.received = 0
        self.disorder = 0  # a durable frame whose seq is not above the client's last one
        self.post_failures = 0
        self.failed = asyncio.get_running_loop().create_future()

    async def client(self, url: str, token: str, ready: asyncio.Event, connected: list, path: str = "/ws/") -> None:
        from websockets.asyncio.client import connect

        host = url.split("://", 1)[1]
        headers = {"Authorization": f"Bearer {token}"}
        try:
            await self.listen(connect, f"ws://{host}{path}", url, headers, ready, connected)
        except Exception as error:
            if not ready.is_set():
                self.failed.set_exception(error)  # before the run starts, one failed client stops it

    async def listen(self, connect, socket_url, url, headers, ready, connected) -> None:
        async with connect(socket_url, additional_headers=headers, origin=url, max_queue=None) as ws:
            assert json.loads(await ws.recv())["type"] == "hello"  # live from here: no resume to send
            connected.append(ws)
            if len(connected) == len(self.clinics) * self.per_clinic:
                ready.set()
            last_seq = 0
            async for text in ws:
                if '"message:new"' not in text:
                    continue
                now, wall = time.perf_counter(), time.time()
                frame = json.loads(text)
                if frame["seq"] <= last_seq:
                    self.disorder += 1
                last_seq = frame["seq"]
                content = frame["data"]["message"]["content"]
                if content in self.sent:
                    self.latencies.append(1000 * (now - self.sent[content]))
                    self.since_publish.append(1000 * (wall - datetime.fromisoformat(frame["at"]).timestamp()))
                    self.received += 1

    async def post(self, http, index: int, n: int) -> None:
        from conversations.management.commands.simulate_patients import notification
        from conversations.webhooks.whatsapp import signature_of

        _token, number_id, secret = self.clinics[index]
        content = f"fanout {n}"
        body = json.dumps(notification(number_id, content, n, phone=f"55119{n % 50:08d}", name="Carga")).encode()
        headers = {"Content-Type": "application/json", "X-Hub-Signature-256": signature_of(body, secret)}
        self.sent[content] = started = time.perf_counter()
        try:
            response = await http.post("/webhooks/whatsapp/", content=body, headers=headers)
            response.raise_for_status()
            self.post_ms.append(1000 * (time.perf_counter() - started))
        except Exception:
            self.post_failures += 1
            del self.sent[content]

    async def stream(self, url: str, rate: float, seconds: float) -> int:
        import httpx

        limits = httpx.Limits(max_connections=50, max_keepalive_connections=50)
        async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as http:
            posts, started, n = [], time.perf_counter(), 0
            while (elapsed := time.perf_counter() - started) < seconds:
                due = int(elapsed * rate) + 1
                while n < due:
                    posts.append(asyncio.create_task(self.post(http, n % len(self.clinics), n)))
                    n += 1
                await asyncio.sleep(1 / rate)
            await asyncio.gather(*posts)
        return n


async def main_async(args, clinics, url: str, pid: int) -> dict:
    run = Run(clinics, args.clients // len(clinics))
    ready, connected = asyncio.Event(), []
    rss_before = rss_kib(pid)
    clients = []
    connect_started = time.perf_counter()
    for token, _number, _secret in clinics:
        for _ in range(run.per_clinic):
            clients.append(asyncio.create_task(run.client(url, token, ready, connected)))
            if len(clients) % 50 == 0:
                await asyncio.sleep(0.05)  # connect in waves, as browsers do after a deploy
    waiting = asyncio.ensure_future(ready.wait())
    await asyncio.wait([waiting, run.failed], timeout=120, return_when=asyncio.FIRST_COMPLETED)
    if run.failed.done():
        raise SystemExit(f"a client could not connect: {run.failed.exception()!r}")
    if not ready.is_set():
        raise SystemExit(f"only {len(connected)} of {len(clients)} clients connected within 2 minutes")
    connect_seconds = time.perf_counter() - connect_started
    await asyncio.sleep(1)
    rss_after = rss_kib(pid)
    idle_before, idle_wall = cpu_seconds(pid), time.perf_counter()
    await asyncio.sleep(args.idle)
    idle_cpu = (cpu_seconds(pid) - idle_before) / (time.perf_counter() - idle_wall)
    cpu_before, own_before, wall_before = cpu_seconds(pid), time.process_time(), time.perf_counter()
    posted = await run.stream(url, args.rate, args.seconds)
    await asyncio.sleep(2)  # let the last frames arrive
    wall = time.perf_counter() - wall_before
    server_cpu = (cpu_seconds(pid) - cpu_before) / wall
    own_cpu = (time.process_time() - own_before) / wall
    for ws in connected:
        await ws.close()
    for task in clients:
        task.cancel()
    expected = (posted - run.post_failures) * run.per_clinic
    return {
        "benchmark": "fanout",
        "clients": len(connected),
        "clinics": len(clinics),
        "rate": args.rate,
        "seconds": args.seconds,
        "webhooks": posted,
        "connects_per_s": round(len(connected) / connect_seconds, 1),
        "latency_ms": percentiles(run.latencies),
        "post_ms": percentiles(run.post_ms),
        "publish_to_frame_ms": percentiles(run.since_publish),
        "frames_expected": expected,
        "frames_received": run.received,
        "lost": expected - run.received,
        "seq_disorder": run.disorder,
        "post_failures": run.post_failures,
        "server_cpu_pct": round(100 * server_cpu, 1),
        "idle_cpu_pct": round(100 * idle_cpu, 2),
        "kib_per_conn": round((rss_after - rss_before) / max(1, len(connected)), 1),
        "loadgen_cpu_pct": round(100 * own_cpu, 1),
    }


def percentiles(values: list[float]) -> dict:
    if len(values) < 2:
        return {"n": len(values)}
    q = statistics.quantiles(values, n=100)
    return {"n": len(values), "p50": round(q[49], 2), "p90": round(q[89], 2), "p99": round(q[98], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--clinics", type=int, default=10)
    parser.add_argument("--rate", type=float, default=100, help="webhooks a second, over all clinics")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--idle", type=float, default=3, help="seconds connected and quiet, CPU measured")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    production_env("DATABASE_URL", "REDIS_URL")
    raise_file_limit()
    clinics = prepare(args.clinics)
    server = start_server(args.port)
    gc.freeze()  # this process's collector must not pause the clients (Django is loaded here too)
    try:
        import uvloop

        result = uvloop.run(main_async(args, clinics, f"http://127.0.0.1:{args.port}", server.pid))
    finally:
        server.terminate()
        server.wait(10)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
