"""Capacity: this machine's unit costs, a model built on them, the model checked against runs of 1, 2 and 4
server processes, and what 1,000, 10,000 and 50,000 clinics would need (docs/capacity.md).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/taskmed_bench REDIS_URL=redis://127.0.0.1:6379/13 \\
        .venv/bin/python bench/capacity.py

Unit costs, each from its own run (fresh server processes; CPU from /proc for the servers and every
PostgreSQL process, from Redis's own `INFO cpu` for Redis):
- a connect, and a connection idle for a second (2,000 sockets connecting, then quiet);
- a webhook (delivered to its clinic's feed) and a frame written to a socket, from two runs of one process
  (one socket a clinic, then 100); the webhook on PostgreSQL and on Redis too;
- a message heard from another process over Redis (every socket on one process, the webhooks to another);
- a screen's fetch of its list's row, as the inbox makes on a frame it cannot apply itself (static/js/list.js);
- memory a connection (RSS growth while connecting).

The model: a process's CPU = its webhooks × webhook + frames it writes × frame + its sockets × idle + frames
it hears × bus. It predicts runs of 1, 2 and 4 processes under the unit runs' load and another (3,000
sockets over 60 clinics, 40 webhooks a second), each clinic's sockets and webhooks spread over the processes,
and the latter with clinic affinity too: server CPU, PostgreSQL CPU and memory, measured then, side by
side. Prints one JSON line; writes bench/capacity.json and the plots docs/capacity/check.svg and
docs/capacity/plan.svg. Traffic goes to 127.0.0.1 only.
"""

import argparse
import asyncio
import json
import math
import os
import statistics
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "taskmed.settings")

from bench.fanout import Run, cpu_seconds, prepare, production_env, rss_kib, start_server  # noqa: E402

METRICS_TOKEN = "bench-capacity"
TARGET_UTILISATION = 0.6  # cores planned at 60 % busy at the daily peak: room for bursts and a lost host
SOCKETS_PER_PROCESS = 10_000  # measured: one process holds 10,000 (docs/benchmarks.md)
SCENARIOS = (1_000, 10_000, 50_000)
LOAD_NAMES = "ABCDEFGH"  # the check's loads, as the page and its plot name them
# Screens open per clinic at the peak: P(s) ∝ s^-2.4 over 1…100. Mean 1.96 (50,000 clinics ≈ 100,000
# sockets); 72 % of clinics have one screen, a few have dozens.
ZIPF_EXPONENT = 2.4
MAX_SCREENS = 100
PEAK_MESSAGES_PER_SCREEN_SECOND = 0.01  # 36 inbound messages an hour per open screen at the daily peak
# Of the inbound messages, the share whose row a screen still asks the server for (static/js/list.js): a
# patient writing again into a conversation the screen's list shows updates the row from the frame; the
# first message of a new or reopened conversation, one whose row is past the list's first page, or two
# stamped in the same second are asked for. An assumption (one message in five), not a measurement.
ROW_ASKED_SHARE = 0.2


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_cpu() -> float:
    total = 0.0
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if (proc / "comm").read_text().strip() == "postgres":
                    total += cpu_seconds(int(proc.name))
            except (OSError, ValueError):
                continue  # a backend that ended meanwhile
    return total


def redis_cpu() -> float:
    import redis

    info = redis.Redis.from_url(os.environ["REDIS_URL"]).info("cpu")
    return info["used_cpu_sys"] + info["used_cpu_user"]


def metric(port: int, name: str) -> float:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 (http://127.0.0.1 only)
        for line in answer.read().decode().splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def probe_ms() -> float:
    """CPU milliseconds a fixed piece of Python work takes now: the machine's speed, which on this shared
    host drifts by a third from one minute to the next (and every process on it with it)."""
    started, sums = time.process_time(), {}
    for i in range(20_000):
        sums[i & 1023] = sums.get(i & 1023, 0) + i * i
    return 1000 * (time.process_time() - started)


class Pace:
    """The probe every half second while a run goes on. `stop()` gives the factor that scales the CPU a run
    measured to the pace of the sitting's start (`Pace.reference`), so that runs made minutes apart compare:
    the costs and the check are in the same units, the raw figures kept beside them."""

    reference: float = 0.0

    def __init__(self):
        self.samples: list[float] = []
        self.task = asyncio.create_task(self._sample())

    async def _sample(self) -> None:
        while True:
            self.samples.append(probe_ms())
            await asyncio.sleep(0.5)

    def stop(self) -> float:
        self.task.cancel()
        return Pace.reference / statistics.median(self.samples) if Pace.reference and self.samples else 1.0


async def reference_speed(seconds: float = 10) -> float:
    pace = Pace()
    await asyncio.sleep(seconds)
    pace.stop()
    return statistics.median(pace.samples)


async def post_stream(run: Run, urls: list[str], rate: float, seconds: float) -> int:
    """Signed webhooks at `rate` a second for `seconds`, spread over `urls` in turn."""
    import httpx

    limits = httpx.Limits(max_connections=50, max_keepalive_connections=50)
    https = [httpx.AsyncClient(base_url=url, timeout=30, limits=limits) for url in urls]
    posts, started, n = [], time.perf_counter(), 0
    while (elapsed := time.perf_counter() - started) < seconds:
        while n < int(elapsed * rate) + 1:
            # Clinic n % clinics, to each process in turn over the rounds (with as many clinics as a multiple
            # of the processes, n % processes would send a clinic's webhooks always to the same one).
            target = https[(n % len(run.clinics) + n // len(run.clinics)) % len(https)]
            posts.append(asyncio.create_task(run.post(target, n % len(run.clinics), n)))
            n += 1
        await asyncio.sleep(1 / rate)
    await asyncio.gather(*posts)
    for http in https:
        await http.aclose()
    return n


def scaled(result: dict, factor: float) -> dict:
    """A run's CPU figures at the sitting's reference speed; the raw ones kept under `raw`."""
    cpu_keys = ("connect_cpu_s", "idle_cpu", "cpu", "postgres_cpu", "redis_cpu", "cpu_s", "postgres_cpu_s")
    raw = {key: result[key] for key in cpu_keys if key in result}
    for key, value in raw.items():
        result[key] = [v * factor for v in value] if isinstance(value, list) else value * factor
    return result | {"speed_factor": factor, "raw": raw}


async def load(
    clinics,
    *,
    procs: int,
    clients: int,
    rate: float,
    seconds: float,
    idle: float = 0,
    sockets_on=None,
    posts_to=None,
    affinity: bool = False,
) -> dict:
    """One run on fresh processes: `clients` sockets over the clinics (on process `sockets_on`; else each
    clinic's on one process with `affinity`, as nginx's hash does; else each clinic's spread over all), then
    `idle` quiet seconds, then webhooks at `rate` (to process `posts_to`, else spread)."""
    ports = [free_port() for _ in range(procs)]
    servers = [start_server(port) for port in ports]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        pace = Pace()
        run = Run(clinics, clients // len(clinics))
        ready, connected, tasks = asyncio.Event(), [], []
        rss_before = [rss_kib(s.pid) for s in servers]
        cpu_before = [cpu_seconds(s.pid) for s in servers]
        for n in range(run.per_clinic * len(clinics)):
            token = clinics[n % len(clinics)][0]
            clinic, nth = n % len(clinics), n // len(clinics)
            spread = (clinic + nth) % procs  # a clinic's sockets over every process, each clinic from another
            target = urls[sockets_on if sockets_on is not None else clinic % procs if affinity else spread]
            tasks.append(asyncio.create_task(run.client(target, token, ready, connected)))
            if len(tasks) % 50 == 0:
                await asyncio.sleep(0.05)
        waiting = asyncio.create_task(ready.wait())
        await asyncio.wait([waiting, run.failed], timeout=120, return_when=asyncio.FIRST_COMPLETED)
        if run.failed.done():
            raise SystemExit(
                f"{procs} processes, {clients} sockets: a client could not connect: {run.failed.exception()!r}"
            )
        if not ready.is_set():
            raise SystemExit(f"{procs} processes, {clients} sockets: {len(connected)} connected in 120 s")
        await asyncio.sleep(1)
        connect_cpu = sum(cpu_seconds(s.pid) for s in servers) - sum(cpu_before)
        rss_growth = sum(rss_kib(s.pid) for s in servers) - sum(rss_before)
        idle_cpu = 0.0
        if idle:
            before, wall = sum(cpu_seconds(s.pid) for s in servers), time.perf_counter()
            await asyncio.sleep(idle)
            idle_cpu = (sum(cpu_seconds(s.pid) for s in servers) - before) / (time.perf_counter() - wall)
        result = {"procs": procs, "clients": len(connected), "clinics": len(clinics), "rate": rate}
        result["subscribed"] = [metric(p, "taskmed_hub_clinics") for p in ports]
        result |= {"connect_cpu_s": connect_cpu, "rss_growth_kib": rss_growth, "idle_cpu": idle_cpu}
        result["rss_base_kib"] = sum(rss_before) / procs
        if rate:
            frames_before = [metric(p, "taskmed_ws_frames_total") for p in ports]
            heard_before = [metric(p, "taskmed_bus_messages_received_total") for p in ports]
            cpu_before = [cpu_seconds(s.pid) for s in servers]
            pg_before, redis_before, wall = postgres_cpu(), redis_cpu(), time.perf_counter()
            posted = await post_stream(run, [urls[posts_to]] if posts_to is not None else urls, rate, seconds)
            await asyncio.sleep(1)
            wall = time.perf_counter() - wall
            cpu = [(cpu_seconds(s.pid) - b) / wall for s, b in zip(servers, cpu_before, strict=True)]
            result |= {
                "wall_s": wall,
                "webhooks_per_s": (posted - run.post_failures) / wall,
                "cpu": cpu,
                "postgres_cpu": (postgres_cpu() - pg_before) / wall,
                "redis_cpu": (redis_cpu() - redis_before) / wall,
                "frames_per_s": [
                    (metric(p, "taskmed_ws_frames_total") - f) / wall for p, f in zip(ports, frames_before, strict=True)
                ],
                "heard_per_s": [
                    (metric(p, "taskmed_bus_messages_received_total") - h) / wall
                    for p, h in zip(ports, heard_before, strict=True)
                ],
                "lost": (posted - run.post_failures) * run.per_clinic - run.received,
            }
        for ws in connected:
            await ws.close()
        for task in tasks:
            task.cancel()
        return scaled(result, pace.stop())
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(20)


def screen_sessions(clinics) -> list[tuple[str, dict[str, int]]]:
    """Each bench clinic's receptionist signed in (the session cookie a browser holds) and the clinic's
    conversations by the last 8 digits of the patient's number (the webhooks' patients)."""
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.test import Client

    from conversations.models import Conversation

    sessions = []
    for _token, number_id, _secret in clinics:  # a bench clinic's number id is its slug, `bench-N`
        browser = Client()
        browser.force_login(get_user_model().objects.get(username=number_id.replace("-", ".")))
        conversations = Conversation.objects.filter(clinic__slug=number_id).order_by("id")
        rows = {phone[-8:]: pk for pk, phone in conversations.values_list("id", "contact__phone")}
        sessions.append((browser.cookies[settings.SESSION_COOKIE_NAME].value, rows))
    return sessions


async def screens_run(clinics, sessions, *, rate: float, seconds: float, screens: int) -> dict:
    """Webhooks at `rate` to one process, each followed by `screens` fetches of its conversation's row in
    the list, as each open screen makes on the frame (static/js/list.js). What the process spends beyond
    the webhooks is the fetches'."""
    import httpx

    port = free_port()
    server = start_server(port)
    try:
        pace = Pace()
        run = Run(clinics, 1)
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
        http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60, limits=limits)
        fetched = []

        async def message(n: int) -> None:
            index = n % len(clinics)
            await run.post(http, index, n)
            cookie, rows = sessions[index]
            if (conversation := rows.get(f"{n % 50:08d}")) is None:
                return
            headers = {"Cookie": f"sessionid={cookie}"}
            url = f"/inbox/rows/?id={conversation}"
            answers = await asyncio.gather(*(http.get(url, headers=headers) for _ in range(screens)))
            fetched.extend(a.status_code for a in answers)

        async def stream(first: int, duration: float) -> int:
            tasks, started, n = [], time.perf_counter(), first
            while (elapsed := time.perf_counter() - started) < duration:
                while n < first + int(elapsed * rate) + 1:
                    tasks.append(asyncio.create_task(message(n)))
                    n += 1
                await asyncio.sleep(1 / rate)
            await asyncio.gather(*tasks)
            return n - first

        await stream(0, 2)  # warm: templates loaded, connections open
        if set(fetched) != {200}:
            raise SystemExit(f"the screens' row fetches answered {sorted(set(fetched))}, not only 200")
        fetched.clear()
        posts_before = run.post_failures
        cpu_before, pg_before, wall = cpu_seconds(server.pid), postgres_cpu(), time.perf_counter()
        posted = await stream(10_000, seconds)
        await asyncio.sleep(1)
        await http.aclose()
        result = {
            "cpu_s": cpu_seconds(server.pid) - cpu_before,
            "postgres_cpu_s": postgres_cpu() - pg_before,
            "webhooks": posted - (run.post_failures - posts_before),
            "fetches": fetched.count(200),
            "wall_s": time.perf_counter() - wall,
        }
        return scaled(result, pace.stop())
    finally:
        server.terminate()
        server.wait(20)


def measure_units(clinics, args) -> tuple[dict, dict]:
    """The unit costs, each from its own run on fresh processes: a connect and an idle socket; a webhook and a
    frame, apart, from two runs of one process (one socket a clinic, then 100); a message heard over Redis,
    from a process holding every socket while the webhooks go to another; a screen's fetch of a list row."""
    few = clinics[: args.clinics]
    runs = {
        "connect": asyncio.run(load(few, procs=1, clients=args.clients, rate=0, seconds=0, idle=args.idle)),
        "webhook": asyncio.run(load(few, procs=1, clients=len(few), rate=args.webhook_rate, seconds=args.seconds)),
        "frame": asyncio.run(load(few, procs=1, clients=args.clients, rate=args.rate, seconds=args.seconds)),
        "bus": asyncio.run(
            load(few, procs=2, clients=len(few), rate=args.webhook_rate, seconds=args.seconds, sockets_on=1, posts_to=0)
        ),
    }
    connect, w, f, b = runs["connect"], runs["webhook"], runs["frame"], runs["bus"]
    idle = connect["idle_cpu"] / connect["clients"]
    # One process, two runs (one socket a clinic, then 100): cpu - sockets × idle = webhooks × webhook +
    # frames × frame; two runs, two unknowns. A webhook's cost includes delivering it to its clinic's feed.
    (r1, f1, c1), (r2, f2, c2) = (
        (r["webhooks_per_s"], r["frames_per_s"][0], r["cpu"][0] - r["clients"] * idle) for r in (w, f)
    )
    det = r1 * f2 - r2 * f1
    webhook_cpu, frame = (c1 * f2 - c2 * f1) / det, (r1 * c2 - r2 * c1) / det
    # Webhooks posted to process 0, every socket on process 1 (one a clinic): process 1 does little but hear
    # them over Redis and write one frame each.
    heard = b["heard_per_s"][1]
    bus = (b["cpu"][1] - b["frames_per_s"][1] * frame - b["clients"] * idle) / heard
    # The screens' fetches: what one process spends beyond its webhooks (no socket: no frame, no bus).
    screens = runs["screens"] = asyncio.run(
        screens_run(few, screen_sessions(few), rate=args.rate / 2, seconds=args.seconds, screens=args.screens)
    )
    fetches, webhooks = screens["fetches"], screens["webhooks"]
    fetch = (screens["cpu_s"] - webhooks * webhook_cpu) / fetches
    fetch_postgres = (screens["postgres_cpu_s"] - webhooks * w["postgres_cpu"] / w["webhooks_per_s"]) / fetches
    units = {
        "connect_cpu_ms": 1000 * connect["connect_cpu_s"] / connect["clients"],
        "idle_cpu_us_per_conn_s": 1e6 * idle,
        "webhook_cpu_ms": 1000 * webhook_cpu,
        "webhook_postgres_cpu_ms": 1000 * w["postgres_cpu"] / w["webhooks_per_s"],
        "webhook_redis_cpu_ms": 1000 * w["redis_cpu"] / w["webhooks_per_s"],
        "frame_cpu_us": 1e6 * frame,
        "row_fetch_cpu_ms": 1000 * fetch,
        "row_fetch_postgres_cpu_ms": 1000 * fetch_postgres,
        "bus_heard_cpu_us": 1e6 * bus,
        "frames_per_webhook_per_socket": f2 / (r2 * (f["clients"] / f["clinics"])),
        "published_per_webhook": heard / b["webhooks_per_s"],
        "kib_per_conn": connect["rss_growth_kib"] / connect["clients"],
        "process_base_mib": connect["rss_base_kib"] / 1024,
    }
    return units, runs


def predict(units: dict, *, procs: int, clients: int, clinics: int, rate: float, affinity: bool = False) -> list:
    """Each process's CPU (cores) for a load spread evenly over `procs` processes."""
    per_socket = units["frames_per_webhook_per_socket"]
    frames = rate * (clients / clinics) * per_socket / procs
    published = rate * units["published_per_webhook"]
    # Spread sockets: every process is subscribed to every clinic and hears all the others publish.
    # Affinity: only a clinic's own process hears it, when its webhook arrived at another ((P-1)/P of them).
    heard = published * (procs - 1) / procs * ((1 / procs) if affinity else 1)
    cpu = (
        rate / procs * units["webhook_cpu_ms"] / 1000
        + frames * units["frame_cpu_us"] / 1e6
        + clients / procs * units["idle_cpu_us_per_conn_s"] / 1e6
        + heard * units["bus_heard_cpu_us"] / 1e6
    )
    return [cpu] * procs


def check(units: dict, clinics, loads: list[tuple[int, int, float]], seconds: float) -> list[dict]:
    """Runs of 1, 2 and 4 processes under each load (sockets, clinics, webhooks a second), predicted and
    measured: server CPU, PostgreSQL CPU, and memory. Each clinic's sockets spread over every process (each
    hears the others' messages), and under the last load also each clinic's on one process (affinity)."""
    rows = []
    runs = [(spec, procs, False) for spec in loads for procs in (1, 2, 4)]
    runs += [(loads[-1], procs, True) for procs in (2, 4)]
    for (clients, count, rate), procs, affinity in runs:
        measured = asyncio.run(
            load(clinics[:count], procs=procs, clients=clients, rate=rate, seconds=seconds, affinity=affinity)
        )
        done = measured["webhooks_per_s"]
        predicted = predict(
            units, procs=procs, clients=measured["clients"], clinics=count, rate=done, affinity=affinity
        )
        rss = measured["rss_base_kib"] * procs + measured["rss_growth_kib"]
        rows.append(
            {
                "load": f"{clients:,} sockets, {count} clinics, {rate:g} webhooks/s",
                "procs": procs,
                "affinity": affinity,
                "clients": measured["clients"],
                "webhooks_per_s": round(done, 1),
                "subscribed": measured["subscribed"],
                "heard_per_s": round(sum(measured["heard_per_s"]), 1),
                "predicted_cpu_pct": round(100 * sum(predicted), 1),
                "measured_cpu_pct": round(100 * sum(measured["cpu"]), 1),
                "raw_cpu_pct": round(100 * sum(measured["raw"]["cpu"]), 1),
                "speed_factor": round(measured["speed_factor"], 3),
                "measured_per_process_pct": [round(100 * c, 1) for c in measured["cpu"]],
                "error_pct": round(100 * (sum(predicted) - sum(measured["cpu"])) / sum(measured["cpu"]), 1),
                "predicted_postgres_cpu_pct": round(done * units["webhook_postgres_cpu_ms"] / 10, 1),
                "measured_postgres_cpu_pct": round(100 * measured["postgres_cpu"], 1),
                "predicted_rss_mib": round(
                    procs * units["process_base_mib"] + measured["clients"] * units["kib_per_conn"] / 1024, 1
                ),
                "measured_rss_mib": round(rss / 1024, 1),
                "lost": measured["lost"],
                "redis_cpu_pct": round(100 * measured["redis_cpu"], 1),
            }
        )
    return rows


def zipf_sizes() -> tuple[float, float]:
    """Mean screens per clinic and mean of its square, over the Zipf mix."""
    weights = [s**-ZIPF_EXPONENT for s in range(1, MAX_SCREENS + 1)]
    total = sum(weights)
    mean = sum(s * w for s, w in zip(range(1, MAX_SCREENS + 1), weights, strict=True)) / total
    square = sum(s * s * w for s, w in zip(range(1, MAX_SCREENS + 1), weights, strict=True)) / total
    return mean, square


def plan(units: dict) -> list[dict]:
    """What each scenario needs at its daily peak, with clinic affinity: the webhooks, the frames, the idle
    sockets, what the frames make the screens fetch, and the bus between the processes."""
    mean, square = zipf_sizes()
    rows = []
    for clinics in SCENARIOS:
        sockets = clinics * mean
        rate = PEAK_MESSAGES_PER_SCREEN_SECOND * sockets  # a clinic's messages grow with its screens
        shown = PEAK_MESSAGES_PER_SCREEN_SECOND * clinics * square  # messages a second × the screens they reach
        frames = shown * units["frames_per_webhook_per_socket"]
        # The screens ask for the row of a share of the messages (ROW_ASKED_SHARE), and the one screen that has
        # the conversation open fetches the message (assumed to cost what a row does).
        fetches = shown * ROW_ASKED_SHARE + rate
        procs_for_sockets = -(-sockets // SOCKETS_PER_PROCESS)
        server = (
            rate * units["webhook_cpu_ms"] / 1000
            + frames * units["frame_cpu_us"] / 1e6
            + sockets * units["idle_cpu_us_per_conn_s"] / 1e6
            + fetches * units["row_fetch_cpu_ms"] / 1000
        )
        procs = max(int(procs_for_sockets), -(-int(server / TARGET_UTILISATION * 1000) // 1000), 1)
        server += rate * units["published_per_webhook"] * (procs - 1) / procs * units["bus_heard_cpu_us"] / 1e6
        procs = max(procs, -(-int(server / TARGET_UTILISATION * 1000) // 1000))
        postgres = rate * units["webhook_postgres_cpu_ms"] / 1000 + fetches * units["row_fetch_postgres_cpu_ms"] / 1000
        memory_gib = (sockets * units["kib_per_conn"] + procs * units["process_base_mib"] * 1024) / 2**20
        rows.append(
            {
                "clinics": clinics,
                "sockets": round(sockets),
                "peak_messages_per_s": round(rate, 1),
                "frames_per_s": round(frames),
                "screen_fetches_per_s": round(fetches),
                "server_cores": round(server / TARGET_UTILISATION, 2),
                "server_processes": procs,
                "hosts_2_cores": -(-procs // 2),
                "server_memory_gib": round(memory_gib, 2),
                "postgres_cores": round(postgres / TARGET_UTILISATION, 2),
                "redis_cores": round(rate * units["webhook_redis_cpu_ms"] / 1000 / TARGET_UTILISATION, 2),
            }
        )
    return rows


def nice_ticks(top: float) -> list[float]:
    """Axis ticks at 0 and round steps (1, 2, 2.5 or 5 × a power of ten), the last at or above `top`."""
    raw = top / 4
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    return [round(step * n, 10) for n in range(math.ceil(top / step) + 1)]


def bars_svg(title: str, groups: list[str], series: dict[str, list[float]], unit: str) -> str:
    """A grouped bar chart as SVG (no plotting library needed)."""
    width, height, left, bottom, top = max(640, 80 + 110 * len(groups)), 320, 60, 40, 40
    colours = ["#0a6e69", "#e0a030", "#7a5cc0", "#c04848"]
    ticks = nice_ticks(max(max(values) for values in series.values()) * 1.1 or 1)
    peak = ticks[-1]
    plot_w, plot_h = width - left - 20, height - bottom - top
    slot = plot_w / len(groups)
    bar = slot * 0.7 / len(series)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
        f'font-size="12"><rect width="100%" height="100%" fill="white"/>',
        f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="14">{title}</text>',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="black"/>',
    ]
    for value in ticks:
        y = top + plot_h - plot_h * value / peak
        parts.append(f'<text x="{left - 6}" y="{y + 4}" text-anchor="end">{value:g}</text>')
        parts.append(f'<line x1="{left}" y1="{y}" x2="{left + plot_w}" y2="{y}" stroke="#ddd"/>')
    middle = top + plot_h / 2
    parts.append(f'<text x="14" y="{middle}" transform="rotate(-90 14 {middle})" text-anchor="middle">{unit}</text>')
    for g, group in enumerate(groups):
        x0 = left + g * slot + slot * 0.15
        for s, values in enumerate(series.values()):
            h = plot_h * values[g] / peak
            x, y = x0 + s * bar, top + plot_h - h
            parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar - 2:.1f}" height="{h:.1f}" fill="{colours[s]}"/>')
            label = f"{values[g]:.3g}"
            parts.append(
                f'<text x="{x + bar / 2:.1f}" y="{y - 4:.1f}" text-anchor="middle" font-size="10">{label}</text>'
            )
        parts.append(
            f'<text x="{left + g * slot + slot / 2:.1f}" y="{top + plot_h + 16}" text-anchor="middle">{group}</text>'
        )
    for s, name in enumerate(series):
        parts.append(f'<rect x="{left + 10 + s * 150}" y="{height - 16}" width="10" height="10" fill="{colours[s]}"/>')
        parts.append(f'<text x="{left + 24 + s * 150}" y="{height - 7}">{name}</text>')
    parts.append("</svg>\n")
    return "\n".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--clinics", type=int, default=20)
    parser.add_argument("--rate", type=float, default=20, help="webhooks a second in the fan-out unit run")
    parser.add_argument("--webhook-rate", type=float, default=60, help="webhooks a second, one socket a clinic")
    parser.add_argument(
        "--check",
        nargs="+",
        default=["2000,20,20", "3000,60,40"],
        help="loads the model is checked on, each SOCKETS,CLINICS,WEBHOOKS_A_SECOND",
    )
    parser.add_argument("--screens", type=int, default=2, help="row fetches a webhook, in the screens' unit run")
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--idle", type=float, default=10)
    parser.add_argument("--plan-only", action="store_true", help="re-plan from bench/capacity.json's unit costs")
    args = parser.parse_args()
    if args.plan_only:
        result = json.loads((ROOT / "bench" / "capacity.json").read_text())
        result["plan"] = plan(result["units"])
        write(result)
        print(json.dumps(result))
        return
    production_env("DATABASE_URL", "REDIS_URL")
    # The clients' tokens are issued once, before runs that take a quarter of an hour together.
    os.environ.update(METRICS_TOKEN=METRICS_TOKEN, JWT_ACCESS_MINUTES="120")
    loads = [(int(c), int(n), float(r)) for c, n, r in (spec.split(",") for spec in args.check)]
    clinics = prepare(max([args.clinics] + [n for _, n, _ in loads]))
    Pace.reference = asyncio.run(reference_speed())
    units, _runs = measure_units(clinics, args)
    checked = check(units, clinics, loads, args.seconds)
    planned = plan(units)
    result = {
        "benchmark": "capacity",
        "units": {k: round(v, 4) for k, v in units.items()},
        "reference_probe_ms": round(Pace.reference, 3),
        "speed_factors": {name: round(run["speed_factor"], 3) for name, run in _runs.items()},
        "check": checked,
        "plan": planned,
        "load": {
            "units": {"clients": args.clients, "clinics": args.clinics, "rate": args.rate, "seconds": args.seconds},
            "check": args.check,
        },
    }
    write(result)
    print(json.dumps(result))


def write(result: dict) -> None:
    """bench/capacity.json, and the plots of docs/capacity.md."""
    checked, planned = result["check"], result["plan"]
    loads = list(dict.fromkeys(row["load"] for row in checked))
    (ROOT / "bench" / "capacity.json").write_text(json.dumps(result, indent=2) + "\n")
    plots = ROOT / "docs" / "capacity"
    plots.mkdir(exist_ok=True)
    (plots / "check.svg").write_text(
        bars_svg(
            "Server CPU, predicted and measured",
            [
                f"{LOAD_NAMES[loads.index(row['load'])]}{'′' if row.get('affinity') else ''}: "
                f"{row['procs']} process{'es' if row['procs'] > 1 else ''}"
                for row in checked
            ],
            {
                "predicted": [r["predicted_cpu_pct"] for r in checked],
                "measured": [r["measured_cpu_pct"] for r in checked],
            },
            "% of a core (all processes)",
        )
    )
    (plots / "plan.svg").write_text(
        bars_svg(
            "Cores needed at the daily peak (60 % busy)",
            [f"{row['clinics']:,} clinics" for row in planned],
            {
                "servers": [r["server_cores"] for r in planned],
                "PostgreSQL": [r["postgres_cores"] for r in planned],
                "Redis": [r["redis_cores"] for r in planned],
            },
            "cores",
        )
    )


if __name__ == "__main__":
    main()
