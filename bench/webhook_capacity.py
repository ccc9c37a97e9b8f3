"""How many signed WhatsApp webhooks a second one server process stores, and at what CPU cost each.

Closed loop: --concurrency senders post back to back, so the rate is the server's capacity, not a target.
From the project root, with PostgreSQL and Redis:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/taskmed REDIS_URL=redis://127.0.0.1:6379/0 \\
        .venv/bin/python bench/webhook_capacity.py --concurrency 4 --count 600

It uses the clinics of bench/fanout.py (creating them if needed) and starts its own uvicorn process.
"""

import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.fanout import cpu_seconds, prepare, production_env, start_server  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--count", type=int, default=600)
    parser.add_argument("--port", type=int, default=8766)
    args = parser.parse_args()
    production_env("DATABASE_URL", "REDIS_URL")
    clinics = prepare(10)

    import httpx

    from conversations.management.commands.simulate_patients import notification
    from conversations.webhooks.whatsapp import signature_of

    server = start_server(args.port)
    latencies: list[float] = []
    numbers = iter(range(args.count))
    lock = threading.Lock()

    def sender() -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{args.port}", timeout=30) as http:
            for n in numbers:
                _token, number_id, secret = clinics[n % len(clinics)]
                body = json.dumps(
                    notification(number_id, f"capacity {n}", n, phone=f"55119{n % 50:08d}", name="Carga")
                ).encode()
                headers = {"Content-Type": "application/json", "X-Hub-Signature-256": signature_of(body, secret)}
                started = time.perf_counter()
                http.post("/webhooks/whatsapp/", content=body, headers=headers).raise_for_status()
                with lock:
                    latencies.append(1000 * (time.perf_counter() - started))

    try:
        cpu_before, wall_before = cpu_seconds(server.pid), time.perf_counter()
        threads = [threading.Thread(target=sender) for _ in range(args.concurrency)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall, cpu = time.perf_counter() - wall_before, cpu_seconds(server.pid) - cpu_before
    finally:
        server.terminate()
        server.wait(10)
    q = statistics.quantiles(latencies, n=100)
    print(f"{len(latencies)} webhooks, {args.concurrency} at a time: {len(latencies) / wall:.0f} a second")
    print(f"POST → 200: p50 {q[49]:.1f} ms, p99 {q[98]:.1f} ms")
    print(f"server CPU: {1000 * cpu / len(latencies):.1f} ms a webhook ({100 * cpu / wall:.0f} % of a core)")


if __name__ == "__main__":
    main()
