"""Capacity: this machine's unit costs, a model built on them, the model checked against runs of 1, 2 and 4
server processes, and what 1,000, 10,000 and 50,000 clinics would need (docs/capacity.md).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/taskmed_bench REDIS_URL=redis://127.0.0.1:6379/13 \\
        .venv/bin/python bench/capacity.py

Unit costs, each from its own run (fresh server processes; CPU from /proc for the servers and every
PostgreSQL process, from Redis's own `INFO cpu` for Redis):
- a connect, and a connection idle for a second (2,000 sockets connecting, then quiet);
- a webhook, on the server, on PostgreSQL and on Redis (one socket a clinic: hardly any fan-out);
- a frame delivered to a socket (100 sockets a clinic);
- a frame heard from another process over Redis (sockets on one process, webhooks posted to another);
- memory a connection (RSS growth while connecting).

The model: a process's CPU = its webhooks × webhook + frames it writes × frame + its sockets × idle + frames
it hears × bus. It predicts runs of 1, 2 and 4 processes with one load (sockets spread over them, webhooks
too), measured then, side by side. Prints one JSON line; writes bench/capacity.json and the plots
docs/capacity/check.svg and docs/capacity/plan.svg. Traffic goes to 127.0.0.1 only.
"""

import argparse
import asyncio
import json
import os
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "taskmed.settings")

from fanout import Run, cpu_seconds, prepare, production_env, rss_kib, start_server  # noqa: E402

METRICS_TOKEN = "bench-capacity"
TARGET_UTILISATION = 0.6  # cores planned at 60 % busy at the daily peak: room for bursts and a lost host
SOCKETS_PER_PROCESS = 10_000  # measured: one process holds 10,000 (docs/benchmarks.md)
SCENARIOS = (1_000, 10_000, 50_000)
# Screens open per clinic at the peak: P(s) ∝ s^-2.4 over 1…100. Mean 1.96 (50,000 clinics ≈ 100,000
# sockets); 72 % of clinics have one screen, a few have dozens.
ZIPF_EXPONENT = 2.4
MAX_SCREENS = 100
PEAK_MESSAGES_PER_SCREEN_SECOND = 0.01  # 36 inbound messages an hour per open screen at the daily peak


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


async def post_stream(run: Run, urls: list[str], rate: float, seconds: float) -> int:
    """Signed webhooks at `rate` a second for `seconds`, spread over `urls` in turn."""
    import httpx

    limits = httpx.Limits(max_connections=50, max_keepalive_connections=50)
    https = [httpx.AsyncClient(base_url=url, timeout=30, limits=limits) for url in urls]
    posts, started, n = [], time.perf_counter(), 0
    while (elapsed := time.perf_counter() - started) < seconds:
        while n < int(elapsed * rate) + 1:
            posts.append(asyncio.create_task(run.post(https[n % len(https)], n % len(run.clinics), n)))
            n += 1
        await asyncio.sleep(1 / rate)
    await asyncio.gather(*posts)
    for http in https:
        await http.aclose()
    return n


async def load(
    clinics, *, procs: int, clients: int, rate: float, seconds: float, idle: float = 0, sockets_on=None, posts_to=None
) -> dict:
    """One run on fresh processes: `clients` sockets over the clinics (on process `sockets_on`, else spread
    in turn), then `idle` quiet seconds, then webhooks at `rate` (to process `posts_to`, else spread)."""
    ports = [free_port() for _ in range(procs)]
    servers = [start_server(port) for port in ports]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        run = Run(clinics, clients // len(clinics))
        ready, connected, tasks = asyncio.Event(), [], []
        rss_before = [rss_kib(s.pid) for s in servers]
        cpu_before = [cpu_seconds(s.pid) for s in servers]
        for n in range(run.per_clinic * len(clinics)):
            token = clinics[n % len(clinics)][0]
            target = urls[sockets_on if sockets_on is not None else n % procs]
            tasks.append(asyncio.create_task(run.client(target, token, ready, connected)))
            if len(tasks) % 50 == 0:
                await asyncio.sleep(0.05)
        await asyncio.wait_for(ready.wait(), 120)
        await asyncio.sleep(1)
        connect_cpu = sum(cpu_seconds(s.pid) for s in servers) - sum(cpu_before)
        rss_growth = sum(rss_kib(s.pid) for s in servers) - sum(rss_before)
        idle_cpu = 0.0
        if idle:
            before, wall = sum(cpu_seconds(s.pid) for s in servers), time.perf_counter()
            await asyncio.sleep(idle)
            idle_cpu = (sum(cpu_seconds(s.pid) for s in servers) - before) / (time.perf_counter() - wall)
        result = {"procs": procs, "clients": len(connected), "clinics": len(clinics), "rate": rate}
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
        return result
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(20)


def measure_units(clinics, args) -> tuple[dict, dict]:
    """The unit costs, each from its own run."""
    few = clinics[: args.clinics]
    runs = {}
    runs["connect"] = asyncio.run(load(few, procs=1, clients=args.clients, rate=0, seconds=0, idle=args.idle))
    runs["webhook"] = asyncio.run(load(few, procs=1, clients=len(few), rate=args.webhook_rate, seconds=args.seconds))
    runs["frame"] = asyncio.run(load(few, procs=1, clients=args.clients, rate=args.rate, seconds=args.seconds))
    runs["bus"] = asyncio.run(
        load(few, procs=2, clients=args.clients, rate=args.rate, seconds=args.seconds, sockets_on=1, posts_to=0)
    )
    connect = runs["connect"]
    idle = connect["idle_cpu"] / connect["clients"]
    w = runs["webhook"]
    webhook_cpu = (w["cpu"][0] - w["clients"] * idle) / w["webhooks_per_s"]
    f = runs["frame"]
    frames = f["frames_per_s"][0]
    frame = (f["cpu"][0] - f["webhooks_per_s"] * webhook_cpu - f["clients"] * idle) / frames
    webhook_cpu -= frame * w["frames_per_s"][0] / w["webhooks_per_s"]  # its few frames, now known
    b = runs["bus"]
    heard = b["heard_per_s"][1]
    bus = (b["cpu"][1] - b["frames_per_s"][1] * frame - b["clients"] * idle) / heard
    units = {
        "connect_cpu_ms": 1000 * connect["connect_cpu_s"] / connect["clients"],
        "idle_cpu_us_per_conn_s": 1e6 * idle,
        "webhook_cpu_ms": 1000 * webhook_cpu,
        "webhook_postgres_cpu_ms": 1000 * w["postgres_cpu"] / w["webhooks_per_s"],
        "webhook_redis_cpu_ms": 1000 * w["redis_cpu"] / w["webhooks_per_s"],
        "frame_cpu_us": 1e6 * frame,
        "bus_heard_cpu_us": 1e6 * bus,
        "frames_per_webhook_per_socket": frames / (f["webhooks_per_s"] * (f["clients"] / f["clinics"])),
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


def check(units: dict, clinics, args) -> list[dict]:
    """Runs of 1, 2 and 4 processes under one load, predicted and measured."""
    rows = []
    for procs in (1, 2, 4):
        measured = asyncio.run(
            load(clinics[: args.clinics], procs=procs, clients=args.clients, rate=args.rate, seconds=args.seconds)
        )
        predicted = predict(
            units, procs=procs, clients=measured["clients"], clinics=args.clinics, rate=measured["webhooks_per_s"]
        )
        rows.append(
            {
                "procs": procs,
                "predicted_cpu_pct": round(100 * sum(predicted), 1),
                "measured_cpu_pct": round(100 * sum(measured["cpu"]), 1),
                "measured_per_process_pct": [round(100 * c, 1) for c in measured["cpu"]],
                "error_pct": round(100 * (sum(predicted) - sum(measured["cpu"])) / sum(measured["cpu"]), 1),
                "lost": measured["lost"],
                "postgres_cpu_pct": round(100 * measured["postgres_cpu"], 1),
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
    """What each scenario needs at its daily peak, with clinic affinity."""
    mean, square = zipf_sizes()
    rows = []
    for clinics in SCENARIOS:
        sockets = clinics * mean
        rate = PEAK_MESSAGES_PER_SCREEN_SECOND * sockets  # a clinic's messages grow with its screens
        frames = PEAK_MESSAGES_PER_SCREEN_SECOND * clinics * square * units["frames_per_webhook_per_socket"]
        procs_for_sockets = -(-sockets // SOCKETS_PER_PROCESS)
        server = (
            rate * units["webhook_cpu_ms"] / 1000
            + frames * units["frame_cpu_us"] / 1e6
            + sockets * units["idle_cpu_us_per_conn_s"] / 1e6
        )
        procs = max(int(procs_for_sockets), -(-int(server / TARGET_UTILISATION * 1000) // 1000), 1)
        server += rate * units["published_per_webhook"] * (procs - 1) / procs * units["bus_heard_cpu_us"] / 1e6
        procs = max(procs, -(-int(server / TARGET_UTILISATION * 1000) // 1000))
        memory_gib = (sockets * units["kib_per_conn"] + procs * units["process_base_mib"] * 1024) / 2**20
        rows.append(
            {
                "clinics": clinics,
                "sockets": round(sockets),
                "peak_messages_per_s": round(rate, 1),
                "frames_per_s": round(frames),
                "server_cores": round(server / TARGET_UTILISATION, 2),
                "server_processes": procs,
                "hosts_2_cores": -(-procs // 2),
                "server_memory_gib": round(memory_gib, 2),
                "postgres_cores": round(rate * units["webhook_postgres_cpu_ms"] / 1000 / TARGET_UTILISATION, 2),
                "redis_cores": round(rate * units["webhook_redis_cpu_ms"] / 1000 / TARGET_UTILISATION, 2),
            }
        )
    return rows


def bars_svg(title: str, groups: list[str], series: dict[str, list[float]], unit: str) -> str:
    """A grouped bar chart as SVG (no plotting library needed)."""
    width, height, left, bottom, top = 640, 320, 60, 40, 40
    colours = ["#0a6e69", "#e0a030", "#7a5cc0", "#c04848"]
    peak = max(max(values) for values in series.values()) * 1.15 or 1
    plot_w, plot_h = width - left - 20, height - bottom - top
    slot = plot_w / len(groups)
    bar = slot * 0.7 / len(series)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
        f'font-size="12"><rect width="100%" height="100%" fill="white"/>',
        f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="14">{title}</text>',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="black"/>',
    ]
    for tick in range(5):
        value = peak * tick / 4
        y = top + plot_h - plot_h * tick / 4
        parts.append(f'<text x="{left - 6}" y="{y + 4}" text-anchor="end">{value:.3g}</text>')
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
    parser.add_argument("--rate", type=float, default=20, help="webhooks a second in the fan-out and check runs")
    parser.add_argument("--webhook-rate", type=float, default=60, help="webhooks a second, one socket a clinic")
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
    os.environ.update(METRICS_TOKEN=METRICS_TOKEN)
    clinics = prepare(args.clinics)
    units, _runs = measure_units(clinics, args)
    checked = check(units, clinics, args)
    planned = plan(units)
    result = {
        "benchmark": "capacity",
        "units": {k: round(v, 4) for k, v in units.items()},
        "check": checked,
        "plan": planned,
        "load": {"clients": args.clients, "clinics": args.clinics, "rate": args.rate, "seconds": args.seconds},
    }
    write(result)
    print(json.dumps(result))


def write(result: dict) -> None:
    """bench/capacity.json, and the plots of docs/capacity.md."""
    checked, planned = result["check"], result["plan"]
    (ROOT / "bench" / "capacity.json").write_text(json.dumps(result, indent=2) + "\n")
    plots = ROOT / "docs" / "capacity"
    plots.mkdir(exist_ok=True)
    (plots / "check.svg").write_text(
        bars_svg(
            "Server CPU, predicted and measured",
            [f"{row['procs']} process{'es' if row['procs'] > 1 else ''}" for row in checked],
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
