"""Webhook throughput: signed WhatsApp notifications posted open-loop at a fixed rate to N server processes.

Each notification is one patient message, as most are; they go round the bench clinics of bench/fanout.py
(created if needed) and round the server processes (`--procs`, each its own uvicorn on its own port, as
behind a load balancer). The rate is held whatever the answers do (open loop: a slow server shows as
latency, not as a lower rate). Prints one JSON line: the rate achieved, POST → 200 latency (the 200 comes
once the message is committed), every message found stored afterwards, and the servers' CPU. From the
project root, with PostgreSQL and Redis:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/taskmed REDIS_URL=redis://127.0.0.1:6379/0 \\
        .venv/bin/python bench/webhooks.py --procs 2 --rate 500 --seconds 10

`make bench` runs it. Traffic goes to 127.0.0.1 only.
"""

import argparse
import asyncio
import collections
import gc
import json
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.fanout import cpu_seconds, percentiles, prepare, production_env, start_server  # noqa: E402


class Connection:
    """One keep-alive HTTP/1.1 connection: a lean client, so that the load generator's own CPU stays
    small next to the servers' on a shared machine."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> int:
        head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        self.writer.write(head.encode() + b"\r\n" + body)
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionResetError("the server closed the connection")
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin1").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        await self.reader.readexactly(length)
        return int(status_line.split()[1])


class Pool:
    """Keep-alive connections to one server, used in turn (as a webhook sender's pool would be), so that
    none stays idle long enough for the server to close it; more are opened when all are busy."""

    def __init__(self, port: int):
        self.port, self.idle = port, collections.deque()

    async def open(self, count: int) -> None:
        for _ in range(count):
            self.idle.append(Connection(*await asyncio.open_connection("127.0.0.1", self.port)))

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> int:
        while self.idle:
            connection = self.idle.popleft()
            try:
                status = await connection.post(path, body, headers)
            except ConnectionResetError:
                continue  # the server closed it after 5 s idle, before reading this request: another one
            self.idle.append(connection)
            return status
        connection = Connection(*await asyncio.open_connection("127.0.0.1", self.port))
        status = await connection.post(path, body, headers)
        self.idle.append(connection)
        return status


async def stream(args, clinics, ports: list[int]) -> dict:
    from conversations.management.commands.simulate_patients import notification
    from conversations.webhooks.whatsapp import signature_of

    pools = [Pool(port) for port in ports]
    for pool in pools:
        await pool.open(args.connections)
    run = uuid.uuid4().hex[:8]
    latencies, statuses, tasks = [], {}, []

    async def post(n: int) -> None:
        _token, number_id, secret = clinics[n % len(clinics)]
        payload = notification(number_id, f"webhooks {run} {n}", n, phone=f"55119{n % 200:08d}", name="Carga")
        body = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json", "X-Hub-Signature-256": signature_of(body, secret)}
        started = time.perf_counter()
        try:
            status = await pools[n % len(pools)].post("/webhooks/whatsapp/", body, headers)
        except OSError as error:
            status = f"{type(error).__name__}: {error}"  # counted, and shown as lost
        latencies.append(1000 * (time.perf_counter() - started))
        statuses[status] = statuses.get(status, 0) + 1

    warmup = 10 * len(clinics)
    for n in range(warmup):  # every patient known (the usual case), every connection of the servers open
        await post(n)
    latencies.clear(), statuses.clear()
    started, n = time.perf_counter(), 0
    while (elapsed := time.perf_counter() - started) < args.seconds:
        while n < int(elapsed * args.rate) + 1:
            tasks.append(asyncio.create_task(post(n + warmup)))
            n += 1
        await asyncio.sleep(0.001)
    sending = time.perf_counter() - started
    await asyncio.gather(*tasks)
    return {
        "run": run,
        "warmup": warmup,
        "posted": n,
        "achieved_rate": round(n / sending, 1),
        "latencies": latencies,
        "statuses": statuses,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--procs", type=int, default=2, help="server processes")
    parser.add_argument("--rate", type=float, default=500, help="webhooks a second, over all processes")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--clinics", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16, help="keep-alive connections to each process")
    parser.add_argument("--port", type=int, default=8770, help="the first process's port")
    args = parser.parse_args()
    production_env("DATABASE_URL", "REDIS_URL")
    clinics = prepare(args.clinics)
    ports = [args.port + k for k in range(args.procs)]
    servers = [start_server(port) for port in ports]
    try:
        import uvloop

        time.sleep(1)
        gc.freeze()  # this process's collector must not pause the sender (Django is loaded here too)
        cpu_before = [cpu_seconds(server.pid) for server in servers]
        wall_before = time.perf_counter()
        result = uvloop.run(stream(args, clinics, ports))
        wall = time.perf_counter() - wall_before
        cpu = [(cpu_seconds(s.pid) - before) / wall for s, before in zip(servers, cpu_before, strict=True)]
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(10)
    from conversations.models import Message

    stored = Message.objects.filter(content__startswith=f"webhooks {result['run']} ").count()
    print(
        json.dumps(
            {
                "benchmark": "webhooks",
                "procs": args.procs,
                "rate": args.rate,
                "seconds": args.seconds,
                "posted": result["posted"],
                "achieved_rate": result["achieved_rate"],
                "status": {str(k): v for k, v in result["statuses"].items()},
                "post_ms": percentiles(result["latencies"]),
                "stored": stored - result["warmup"],
                "lost": result["posted"] - (stored - result["warmup"]),
                "server_cpu_pct": [round(100 * c, 1) for c in cpu],
            }
        )
    )


if __name__ == "__main__":
    main()
