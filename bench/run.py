"""`make bench`: the project's benchmarks, each printing one JSON line, appended to docs/benchmarks.md.

    make bench          # fan-out, webhooks, the API, reports, clinic affinity, capacity, the partitioned log
    make bench BENCH_ARGS="--only api --api '--requests 1000'"
    .venv/bin/python bench/run.py --fanout "--clients 1000 --rate 100 --seconds 20" --no-append

Runs against PostgreSQL and Redis on this machine: BENCH_DATABASE_URL (default the `taskmed_bench`
database, created if missing; the API benchmark seeds it with `seed_demo --scale 500`, about 1,000,000
messages, on its first run: a few minutes) and BENCH_REDIS_URL (default Redis database 13). Never the
database of `DATABASE_URL`: the benchmarks write. Each benchmark starts its own server processes in
production mode on loopback ports. The comparison with the reference peer is `../shared/peer/compare.sh`
(docs/benchmarks.md). Each run records how busy the whole machine was meanwhile (and, where it measures it,
the load generator's CPU), so that a reader can tell a clean sitting from a busy one.
"""

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "benchmarks.md"
BENCHMARKS = {
    "fanout": ("bench/fanout.py", "--clients 1000 --clinics 10 --rate 100 --seconds 20"),
    "webhooks": ("bench/webhooks.py", "--procs 2 --rate 500 --seconds 10"),
    "api": ("bench/api.py", "--requests 300"),
    "reports": ("bench/reports.py", "--requests 30 --cold 3"),
    "affinity": ("bench/affinity.py", "--processes 4 --clinics 20 --clients 800 --rate 20 --seconds 15"),
    "capacity": ("bench/capacity.py", "--clients 2000 --clinics 20 --rate 20 --seconds 20"),
    "partitions": ("bench/partitions.py", "--events 200000 --scale 50"),
}
RUNS_HEADING = "## Runs of `make bench`"


def ensure_database(url: str) -> None:
    import psycopg

    name = urlsplit(url).path.lstrip("/")
    server = url.rsplit("/", 1)[0] + "/postgres"
    try:
        with psycopg.connect(server, autocommit=True, connect_timeout=5) as connection:
            if not connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
                print(f"creating the database {name}", file=sys.stderr)
                connection.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as error:
        raise SystemExit(f"PostgreSQL is not reachable at {server}: {error}") from None


def cpu_times() -> tuple[int, int]:
    """The machine's busy and total CPU time so far (jiffies, every core), from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle and iowait
    return sum(fields) - idle, sum(fields)


def machine_during(before: tuple[int, int]) -> dict:
    """How busy the whole machine was since `before` (all cores), and its load: a busy machine's figures
    say more about the machine than about the code (docs/benchmarks.md)."""
    busy, total = cpu_times()
    return {
        "busy_pct": round(100 * (busy - before[0]) / max(1, total - before[1]), 1),
        "load_1m": round(os.getloadavg()[0], 2),
        "cores": os.cpu_count(),
    }


def run(name: str, knobs: str, env: dict) -> dict:
    script, _ = BENCHMARKS[name]
    command = [sys.executable, script, *shlex.split(knobs)]
    before = cpu_times()
    print(f"→ {name}: {' '.join(command[1:])}", file=sys.stderr, flush=True)
    started = time.monotonic()
    done = subprocess.run(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"{name} failed (exit {done.returncode}); its output:\n{done.stdout[-2000:]}")
    result = json.loads(lines[-1])
    result["command"] = f"python {script} {knobs}".strip()
    result["machine"] = machine_during(before)
    print(f"  done in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return result


def summary(result: dict) -> str:
    """The figures of one run that the targets speak of, and the machine's state then, in one table cell."""
    figures = _figures(result)
    machine = result.get("machine")
    if machine:
        loadgen = f", load generator {result['loadgen_cpu_pct']} %" if "loadgen_cpu_pct" in result else ""
        figures += f" (machine {machine['busy_pct']} % busy over {machine['cores']} cores{loadgen})"
    return figures


def _figures(result: dict) -> str:
    name = result["benchmark"]
    if name == "fanout":
        latency = result["latency_ms"]
        return (
            f"{result['clients']} clients, {result['rate']:g} webhooks/s: POST → frame p50 {latency.get('p50')} / "
            f"p99 {latency.get('p99')} ms; {result['lost']} lost, {result['seq_disorder']} out of order; "
            f"{result['server_cpu_pct']} % CPU; {result['kib_per_conn']} KiB/conn; "
            f"{result['connects_per_s']} connects/s"
        )
    if name == "webhooks":
        post = result["post_ms"]
        return (
            f"{result['procs']} processes, {result['achieved_rate']:g}/s: POST → 200 p50 {post.get('p50')} / "
            f"p99 {post.get('p99')} ms; {result['lost']} lost; CPU {result['server_cpu_pct']} %"
        )
    if name == "api":
        return (
            f"{result['messages']:,} messages: list warm p50 {result['list_warm_ms']['p50']} ms, cold "
            f"{result['list_cold_ms']['p50']} ms; detail warm {result['detail_warm_ms']['p50']} ms, cold "
            f"{result['detail_cold_ms']['p50']} ms; statements {json.dumps(result['statements'])}"
        )
    if name == "reports":
        return (
            f"{result['messages']:,} messages, {result['attendances']:,} attendances, {result['days']}-day report: "
            f"warm p50 {result['warm_ms'].get('p50')} / p90 {result['warm_ms'].get('p90')} ms, cold p50 "
            f"{result['cold_ms'].get('p50')} / p90 {result['cold_ms'].get('p90')} ms, a fresh process's first "
            f"request max {result['first_request_ms']['max']} ms; CSV {result['csv_ms']['max']} ms"
            + (f"; facts rebuilt in {result['rebuild_s']} s" if result.get("rebuild_s") is not None else "")
        )
    if name == "affinity":
        return (
            f"{result['processes']} processes behind nginx, {result['clients']} sockets of {result['clinics']} "
            f"clinics: with the clinic in the URL, subscriptions {result['subscriptions_ratio']}×, frames heard "
            f"from other processes {result['bus_frames_ratio']}×, Redis bytes out {result['redis_bytes_ratio']}×; "
            f"lost {result['without']['lost']} / {result['with']['lost']}"
        )
    if name == "capacity":
        loads = list(dict.fromkeys(c["load"] for c in result["check"]))
        names = ["ABCDEFGH"[loads.index(c["load"])] + ("′" if c.get("affinity") else "") for c in result["check"]]
        checks = ", ".join(
            f"{name} {c['procs']}: {c['error_pct']:+g} %" for name, c in zip(names, result["check"], strict=True)
        )
        units, biggest = result["units"], result["plan"][-1]
        return (
            f"frame {units['frame_cpu_us']} µs, webhook {units['webhook_cpu_ms']} ms (PostgreSQL "
            f"{units['webhook_postgres_cpu_ms']} ms), a screen's row fetch {units['row_fetch_cpu_ms']} ms, idle "
            f"{units['idle_cpu_us_per_conn_s']} µs/conn·s, {units['kib_per_conn']} KiB/conn; predicted − measured, "
            f"by load and processes: {checks}; {biggest['clinics']:,} clinics need "
            f"{biggest['server_processes']} processes"
        )
    if name == "partitions":
        return (
            f"{result['events']:,} events: migration {result['migration_s']} s "
            f"({result['migration_s_per_million']} s a million); resume 500 behind p50 "
            f"{result['log_plain']['resume_500_behind']['p50_ms']} → "
            f"{result['log_partitioned']['resume_500_behind']['p50_ms']} ms, append "
            f"{result['log_plain']['append']['p50_ms']} → {result['log_partitioned']['append']['p50_ms']} ms"
        )
    return ""


def append(results: list[dict], docs: Path = DOCS) -> None:
    """The run's figures as the last entry of the runs section (other sections may follow it)."""
    git = shutil.which("git")
    commit = git and subprocess.run([git, "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    commit = commit.stdout.strip() if commit else ""
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    text = docs.read_text() if docs.exists() else "# Benchmarks\n"
    if RUNS_HEADING not in text:
        text = text.rstrip("\n") + f"\n\n{RUNS_HEADING}\n\nEach run appends its figures here (newest last).\n"
    rows = "\n".join(f"| {r['benchmark']} | {summary(r)} |" for r in results)
    lines = "\n".join(json.dumps(r, ensure_ascii=False) for r in results)
    entry = (
        f"### {when}, commit {commit or 'unknown'}\n\n| benchmark | figures |\n|---|---|\n{rows}\n\n"
        f"```json\n{lines}\n```\n"
    )
    start = text.index(RUNS_HEADING) + len(RUNS_HEADING)
    following = text.find("\n## ", start)
    end = len(text) if following == -1 else following + 1
    text = text[:end].rstrip("\n") + "\n\n" + entry + ("\n" + text[end:] if end < len(text) else "")
    docs.write_text(text)
    print(f"appended to {docs.relative_to(ROOT) if docs.is_relative_to(ROOT) else docs}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(BENCHMARKS), help=f"comma-separated: {','.join(BENCHMARKS)}")
    for name, (_script, knobs) in BENCHMARKS.items():
        parser.add_argument(f"--{name}", default=knobs, metavar="KNOBS", help=f"its arguments (default: {knobs})")
    parser.add_argument("--no-append", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    if unknown := set(chosen) - set(BENCHMARKS):
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")

    env = {**os.environ}
    env["DATABASE_URL"] = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/taskmed_bench")
    env["REDIS_URL"] = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
    env.pop("REDIS_PREFIX", None)
    ensure_database(env["DATABASE_URL"])
    results = []
    for name in chosen:
        result = run(name, getattr(args, name), env)
        results.append(result)
        print(json.dumps(result, ensure_ascii=False), flush=True)
    if not args.no_append:
        append(results)


if __name__ == "__main__":
    main()
