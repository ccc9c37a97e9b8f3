"""CPU a webhook's work costs in the domain alone: signature, parse, and its transaction, without the server.

A steadier figure than a server's (no HTTP, threads or other processes sharing the cores), for comparing
changes to the write path. From the project root, with PostgreSQL:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/taskmed .venv/bin/python bench/webhook_store_cpu.py

The on-commit broadcast is left out (there is no server to receive it); everything else runs as served.
"""

import argparse
import json
import sys
import time
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.fanout import prepare, production_env  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300)
    args = parser.parse_args()
    production_env("DATABASE_URL")
    _token, number_id, secret = prepare(1)[0]

    from conversations.management.commands.simulate_patients import notification
    from conversations.webhooks.whatsapp import signature_of, store, verified_secret
    from conversations.webhooks.whatsapp_payload import parse_notification
    from realtime import events

    def one(n: int) -> None:
        body = json.dumps(notification(number_id, f"cpu {n}", n, phone=f"55119{n % 50:08d}", name="Carga")).encode()
        store(parse_notification(json.loads(body)), verified_secret(body, signature_of(body, secret)))

    with mock.patch.object(events, "broadcast", lambda *args, **kwargs: None):
        for n in range(20):  # warm up: contacts and conversations exist, connections are open
            one(n)
        wall, cpu = time.perf_counter(), time.thread_time()
        for n in range(20, 20 + args.count):
            one(n)
        wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
    print(f"{args.count} webhooks stored one after another: {1000 * cpu / args.count:.1f} ms of CPU each,")
    print(f"{1000 * wall / args.count:.1f} ms of wall time each (the rest is waiting on PostgreSQL)")


if __name__ == "__main__":
    main()
