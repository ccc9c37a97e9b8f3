"""Clinic affinity behind nginx: how naming the clinic in the socket's URL cuts each process's subscriptions
and the traffic between processes.

N server processes behind Debian's nginx running deploy/nginx/taskmed.conf (TLS aside), the sockets of K
clinics connected through it, signed webhooks posted through it at a steady rate (nginx spreads them over
the processes). Two sittings, fresh processes each: the sockets without the clinic in their URL (nginx
spreads them: every process ends up subscribed to every clinic), then with `/ws/?clinic=<id>` as the
browser sends it (a clinic's sockets on one process). For each, from every process's /metrics and from
Redis's own statistics: clinics subscribed per process, frames heard from other processes a second, Redis's
bytes out a second, and the frames the clients got (none lost either way). From the project root:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/taskmed_bench REDIS_URL=redis://127.0.0.1:6379/13 \\
        .venv/bin/python bench/affinity.py --processes 4 --clinics 20 --clients 800 --rate 20 --seconds 15

Prints one JSON line (`make bench` appends it to docs/benchmarks.md). Traffic goes to 127.0.0.1 only.
"""

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "taskmed.settings")

from fanout import Run, cpu_seconds, percentiles, prepare, production_env, start_server  # noqa: E402

METRICS_TOKEN = "bench-affinity"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_nginx(workdir: Path, upstreams: list[str]) -> tuple[subprocess.Popen, str]:
    from taskmed.tests.test_nginx import site_for

    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    port = free_port()
    user = "user root root;\n" if os.geteuid() == 0 else ""
    temp = "".join(f"{kind}_temp_path {workdir}/{kind};\n" for kind in ("client_body", "proxy"))
    conf = workdir / "nginx.conf"
    conf.write_text(
        f"{user}daemon off;\nworker_rlimit_nofile 65536;\npid {workdir}/nginx.pid;\nerror_log {workdir}/error.log;\n"
        f"events {{ worker_connections 16384; }}\nhttp {{\naccess_log off;\n{temp}{site_for(upstreams, port)}\n}}\n"
    )
    nginx = subprocess.Popen([binary, "-c", str(conf), "-p", str(workdir)])
    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health/", timeout=1)
            return nginx, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    raise SystemExit((workdir / "error.log").read_text())


def scrape(port: int) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 (http://127.0.0.1 only)
        text = answer.read().decode()
    return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples if not s.labels}


def redis_bytes_out() -> int:
    import redis

    return redis.Redis.from_url(os.environ["REDIS_URL"]).info("stats")["total_net_output_bytes"]


async def sitting(args, clinics, ids: list[int], affinity: bool) -> dict:
    ports = [free_port() for _ in range(args.processes)]
    servers = [start_server(port) for port in ports]
    workdir = Path(tempfile.mkdtemp(prefix="taskmed-affinity-"))
    nginx, url = start_nginx(workdir, [f"127.0.0.1:{port}" for port in ports])
    try:
        run = Run(clinics, args.clients // len(clinics))
        ready, connected, tasks = asyncio.Event(), [], []
        for (token, _number, _secret), clinic_id in zip(clinics, ids, strict=True):
            path = f"/ws/?clinic={clinic_id}" if affinity else "/ws/"
            for _ in range(run.per_clinic):
                tasks.append(asyncio.create_task(run.client(url, token, ready, connected, path)))
                if len(tasks) % 50 == 0:
                    await asyncio.sleep(0.05)
        await asyncio.wait_for(ready.wait(), 120)
        await asyncio.sleep(2)
        before = [scrape(port) for port in ports]
        redis_before, cpu_before = redis_bytes_out(), [cpu_seconds(s.pid) for s in servers]
        started = time.perf_counter()
        posted = await run.stream(url, args.rate, args.seconds)
        await asyncio.sleep(2)
        wall = time.perf_counter() - started
        after = [scrape(port) for port in ports]
        redis_out = (redis_bytes_out() - redis_before) / wall
        cpu = [(cpu_seconds(s.pid) - c) / wall for s, c in zip(servers, cpu_before, strict=True)]
        for ws in connected:
            await ws.close()
        for task in tasks:
            task.cancel()
    finally:
        nginx.terminate()
        for server in servers:
            server.terminate()
        for process in [nginx, *servers]:
            process.wait(20)
        shutil.rmtree(workdir, ignore_errors=True)
    heard = [
        (a["taskmed_bus_messages_received_total"] - b["taskmed_bus_messages_received_total"]) / wall
        for a, b in zip(after, before, strict=True)
    ]
    expected = (posted - run.post_failures) * run.per_clinic
    return {
        "sockets_per_process": [int(m["taskmed_ws_connections"]) for m in after],
        "clinics_per_process": [int(m["taskmed_hub_clinics"]) for m in after],
        "bus_frames_heard_per_s": [round(h, 1) for h in heard],
        "redis_bytes_out_per_s": round(redis_out),
        "server_cpu_pct": [round(100 * c, 1) for c in cpu],
        "webhooks": posted,
        "frames_expected": expected,
        "lost": expected - run.received,
        "seq_disorder": run.disorder,
        "latency_ms": {k: v for k, v in percentiles(run.latencies).items() if k in ("p50", "p99")},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--clinics", type=int, default=20)
    parser.add_argument("--clients", type=int, default=800)
    parser.add_argument("--rate", type=float, default=20, help="webhooks a second, over all clinics")
    parser.add_argument("--seconds", type=float, default=15)
    args = parser.parse_args()
    production_env("DATABASE_URL", "REDIS_URL")
    os.environ.update(METRICS_TOKEN=METRICS_TOKEN, TRUSTED_PROXIES="127.0.0.1")
    clinics = prepare(args.clinics)
    from conversations.models import Clinic

    slugs = [f"bench-{n}" for n in range(1, args.clinics + 1)]
    ids = dict(Clinic.objects.filter(slug__in=slugs).values_list("slug", "id"))
    clinic_ids = [ids[slug] for slug in slugs]
    spread = asyncio.run(sitting(args, clinics, clinic_ids, affinity=False))
    pinned = asyncio.run(sitting(args, clinics, clinic_ids, affinity=True))
    ratio = lambda key: round(sum(pinned[key]) / max(1e-9, sum(spread[key])), 2)  # noqa: E731
    print(
        json.dumps(
            {
                "benchmark": "affinity",
                "processes": args.processes,
                "clinics": args.clinics,
                "clients": args.clients,
                "rate": args.rate,
                "seconds": args.seconds,
                "without": spread,
                "with": pinned,
                "subscriptions_ratio": ratio("clinics_per_process"),
                "bus_frames_ratio": ratio("bus_frames_heard_per_s"),
                "redis_bytes_ratio": round(pinned["redis_bytes_out_per_s"] / spread["redis_bytes_out_per_s"], 2),
            }
        )
    )


if __name__ == "__main__":
    main()
