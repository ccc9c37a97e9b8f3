"""Soak: a server process under connect/disconnect churn, typing, staff sends, patients' webhooks, long-polls
(some abandoned mid-wait) and health probes for a set time, its RSS sampled all along; fails (exit 1) on
any error, on memory growth past a bound, or on a Redis subscription left behind once every client has
gone.

    BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/taskmed_bench BENCH_REDIS_URL=redis://127.0.0.1:6379/13 \\
        .venv/bin/python bench/soak.py --minutes 10 --clients 200 --rate 10

Prints one JSON line: the samples (seconds, RSS MiB), the growth after the warm-up, counts of sessions,
frames, sends and webhooks, and every error seen. Growth is measured from the end of the warm-up (the
first minute, or a tenth of the run if shorter: caches and pools fill) to the end, and must stay under
`--max-growth-mib`.
"""

import argparse
import asyncio
import json
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fanout import prepare, production_env, raise_file_limit, rss_kib, start_server  # noqa: E402


class Soak:
    def __init__(self, args, clinics, url: str):
        self.args, self.clinics, self.url = args, clinics, url
        self.rng = random.Random(11)
        self.counts = {"sessions": 0, "frames": 0, "typing": 0, "sends": 0, "webhooks": 0, "polls": 0, "health": 0}
        self.errors: list[str] = []
        self.stop_at = time.monotonic() + 60 * args.minutes

    def error(self, what: str) -> None:
        if len(self.errors) < 50:
            self.errors.append(what)

    async def client(self, index: int) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed

        token, _number, _secret = self.clinics[index % len(self.clinics)]
        ws_url = self.url.replace("http", "ws") + "/ws/"
        headers = {"Authorization": f"Bearer {token}"}
        while time.monotonic() < self.stop_at:
            try:
                async with connect(ws_url, additional_headers=headers, origin=self.url, open_timeout=30) as ws:
                    self.counts["sessions"] += 1
                    hello = json.loads(await ws.recv())
                    if hello.get("type") != "hello":
                        self.error(f"first frame {hello.get('type')}")
                    conversation, joined, typed_at = None, set(), 0.0
                    until = time.monotonic() + self.rng.uniform(2, 20)
                    while time.monotonic() < min(until, self.stop_at):
                        try:
                            frame = json.loads(await asyncio.wait_for(ws.recv(), self.rng.uniform(0.2, 2)))
                        except TimeoutError:
                            frame = None
                        if frame is not None:
                            self.counts["frames"] += 1
                            if frame.get("type") == "error":
                                self.error(f"error frame {frame.get('code')}")
                            conversation = frame.get("conversation_id") or conversation
                        if conversation and time.monotonic() - typed_at > 5:  # as the browser: a hint per 5 s
                            if conversation not in joined:
                                joined.add(conversation)
                                join = {"type": "conversation:join", "conversation_id": conversation}
                                await ws.send(json.dumps(join))
                            typing = {"type": "conversation:typing", "conversation_id": conversation, "is_typing": True}
                            await ws.send(json.dumps(typing))
                            typed_at = time.monotonic()
                            self.counts["typing"] += 1
            except ConnectionClosed as closed:
                if closed.rcvd is None or closed.rcvd.code not in (1000, 1001, 1013):
                    self.error(f"closed {closed.rcvd.code if closed.rcvd else 'abruptly'}")
            except (OSError, TimeoutError) as failed:
                self.error(f"connect: {failed!r}")
            await asyncio.sleep(self.rng.uniform(0, 1))  # away for a moment: the churn

    async def traffic(self) -> None:
        import httpx

        from conversations.management.commands.simulate_patients import notification
        from conversations.webhooks.whatsapp import signature_of

        n = 0
        async with httpx.AsyncClient(base_url=self.url, timeout=30) as http:
            while time.monotonic() < self.stop_at:
                n += 1
                token, number_id, secret = self.clinics[n % len(self.clinics)]
                body = json.dumps(notification(number_id, f"soak {n}", n, phone=f"55119{n % 40:08d}", name="Soak"))
                headers = {
                    "Content-Type": "application/json",
                    "X-Hub-Signature-256": signature_of(body.encode(), secret),
                }
                response = await http.post("/webhooks/whatsapp/", content=body, headers=headers)
                self.counts["webhooks"] += 1
                if response.status_code != 200:
                    self.error(f"webhook {response.status_code}")
                if n % 3 == 0:  # staff answer now and then, through the API
                    auth = {"Authorization": f"Bearer {token}"}
                    rows = (await http.get("/api/conversations/?limit=1", headers=auth)).json().get("results", [])
                    if rows:
                        sent = await http.post(
                            f"/api/conversations/{rows[0]['id']}/messages/",
                            json={"content": f"resposta {n}"},
                            headers=auth,
                        )
                        self.counts["sends"] += 1
                        if sent.status_code not in (200, 201, 429):
                            self.error(f"send {sent.status_code}")
                await asyncio.sleep(1 / self.args.rate)

    async def poller(self, index: int) -> None:
        """A browser on the long-poll fallback, now and then giving up mid-wait, and the load balancer's
        health probe: the two paths that once left a subscription behind on every call."""
        import httpx

        token, _number, _secret = self.clinics[index % len(self.clinics)]
        auth, after = {"Authorization": f"Bearer {token}"}, 0
        async with httpx.AsyncClient(base_url=self.url) as http:
            while time.monotonic() < self.stop_at:
                patience = self.rng.choice([30.0, 30.0, 0.5])  # a third abandoned before the answer
                try:
                    answer = await http.get(f"/api/events/?after={after}", headers=auth, timeout=patience)
                    if answer.status_code != 200:
                        self.error(f"long-poll {answer.status_code}")
                    else:
                        after = answer.json()["seq"]
                except httpx.TimeoutException:
                    pass
                self.counts["polls"] += 1
                if (await http.get("/api/health/", timeout=10)).status_code != 200:
                    self.error("health")
                self.counts["health"] += 1


def redis_subscriptions(url: str) -> int:
    import redis

    client = redis.Redis.from_url(url)
    return len(client.pubsub_channels()) + client.pubsub_numpat()


async def run(args, clinics, url: str, pid: int) -> dict:
    soak = Soak(args, clinics, url)
    samples: list[tuple[float, float]] = []
    started = time.monotonic()

    async def sample() -> None:
        while time.monotonic() < soak.stop_at:
            samples.append((round(time.monotonic() - started, 1), round(rss_kib(pid) / 1024, 1)))
            await asyncio.sleep(args.sample_seconds)

    baseline = redis_subscriptions(os.environ["REDIS_URL"])
    clients = [soak.client(i) for i in range(args.clients)]
    pollers = [soak.poller(i) for i in range(args.pollers)]
    await asyncio.gather(sample(), soak.traffic(), *clients, *pollers)
    # Every client has gone: the hub lets go of a clinic 30 s after its last socket (LINGER_SECONDS).
    deadline = time.monotonic() + 60
    while redis_subscriptions(os.environ["REDIS_URL"]) - baseline > 1 and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(1)  # polling Redis: there is no event to wait on
    warm = max(60.0, 6 * args.minutes)  # a tenth of the run, at least the first minute
    after_warmup = [rss for at, rss in samples if at >= min(warm, samples[-1][0] / 2)] or [samples[-1][1]]
    growth = round(samples[-1][1] - after_warmup[0], 1)
    leftover = redis_subscriptions(os.environ["REDIS_URL"]) - baseline
    return {
        "benchmark": "soak",
        "minutes": args.minutes,
        "clients": args.clients,
        "rate": args.rate,
        "rss_mib": samples,
        "growth_after_warmup_mib": growth,
        "max_growth_mib": args.max_growth_mib,
        "subscriptions_left": leftover,
        **soak.counts,
        "errors": soak.errors,
        "ok": not soak.errors and growth <= args.max_growth_mib and leftover <= 1,  # the hub's control channel
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--pollers", type=int, default=5, help="long-poll clients (with health probes)")
    parser.add_argument("--clinics", type=int, default=5)
    parser.add_argument("--rate", type=float, default=10, help="webhooks a second")
    parser.add_argument("--sample-seconds", type=float, default=10)
    parser.add_argument("--max-growth-mib", type=float, default=20)
    parser.add_argument("--port", type=int, default=8766)
    args = parser.parse_args()
    os.environ.setdefault("DATABASE_URL", os.environ.get("BENCH_DATABASE_URL", ""))
    os.environ.setdefault("REDIS_URL", os.environ.get("BENCH_REDIS_URL", ""))
    production_env("DATABASE_URL", "REDIS_URL")
    os.environ.setdefault("API_THROTTLE_USER", "100000/min")
    os.environ.setdefault("JWT_ACCESS_MINUTES", str(int(args.minutes) + 10))  # the clients' tokens last the run
    raise_file_limit()
    clinics = prepare(args.clinics)
    server = start_server(args.port)
    try:
        import uvloop

        result = uvloop.run(run(args, clinics, f"http://127.0.0.1:{args.port}", server.pid))
    finally:
        server.terminate()
        server.wait(10)
    print(json.dumps(result))
    sys.exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
