"""The HTTP API on a million messages: the inbox list and one conversation, warm and cold, as a client sees them.

Against `seed_demo --scale 500` (about 1,000,000 messages; made here first when the database has fewer),
one server process with the production flags, a bearer token of a receptionist of the first demo clinic.
Warm: the same request again and again (the read cache answers). Cold: the clinic's cached reads are made
stale before each request (the database answers). Search: full-text search over the clinic's messages,
frequent and rare words in turn. Also counts the SQL statements of a list and a detail
request in-process, for 10 and 100 rows: the same whatever the number of rows. From the project root:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/taskmed_bench REDIS_URL=redis://127.0.0.1:6379/13 \\
        .venv/bin/python bench/api.py --requests 300

Prints one JSON line. Traffic goes to 127.0.0.1 only.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.fanout import percentiles, production_env, start_server  # noqa: E402

USER, CLINIC = "julia.recepcao", "clinica-sao-lucas"


def prepare(scale: int) -> tuple[str, int, int]:
    """(a token, the clinic's id, its busiest conversation's id), seeding first if the database is small."""
    import django

    django.setup()
    from django.core.management import call_command
    from django.db.models import Count

    from conversations.management.commands.listen import Command
    from conversations.models import Clinic, Conversation, Message

    call_command("migrate", verbosity=0)
    if Message.objects.filter(clinic__slug=CLINIC).count() < scale * 900:  # the demo's two clinics share ~2,000 a scale
        print(f"seeding: seed_demo --scale {scale} (about {scale * 2000:,} messages)", file=sys.stderr)
        call_command("seed_demo", scale=scale, verbosity=0)
    clinic = Clinic.objects.get(slug=CLINIC)
    threads = Conversation.objects.filter(clinic=clinic).annotate(n=Count("messages")).order_by("-n")
    busiest = threads.values_list("pk", flat=True).first()
    return Command().issue_token(USER, CLINIC), clinic.pk, busiest


def statements(token: str, clinic_id: int, conversation_id: int) -> dict:
    """SQL statements per request, in-process, once the token's checks are remembered: cold (the cache made
    stale first) and warm, for a page of 10 and of 100 rows: fixed, not per row."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from conversations import read_cache

    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_HOST="127.0.0.1")
    requests = {
        "list_10_rows": ("/api/conversations/", {"limit": 10}),
        "list_100_rows": ("/api/conversations/", {"limit": 100}),
        "detail_50_messages": (f"/api/conversations/{conversation_id}/", {}),
    }
    client.get("/api/conversations/")  # the token's checks, remembered from here on
    counts: dict[str, dict] = {"cold": {}, "warm": {}}
    for name, (path, params) in requests.items():
        for state in ("cold", "warm"):
            if state == "cold":
                read_cache.bump_clinic_version(clinic_id)
            with CaptureQueriesContext(connection) as queries:
                response = client.get(path, params)
                assert response.status_code == 200, response.content[:300]
            counts[state][name] = len(queries)
    return counts


def timed(http, path: str, count: int, before=None) -> list[float]:
    times = []
    for _ in range(count):
        if before is not None:
            before()
        started = time.perf_counter()
        response = http.get(path)
        times.append(1000 * (time.perf_counter() - started))
        response.raise_for_status()
    return times


# Words of the demo's messages, from frequent (in a fifth of them) to rare, and a stemmed, accented form.
SEARCHES = ["consulta", "exame", "remarcar consulta", "convênio unimed", "estacionamento", "exâmes", "febre"]


def searched(http, count: int) -> dict:
    """GET /api/search/ over the clinic's messages, cycling through SEARCHES (never cached)."""
    times = []
    for n in range(count):
        started = time.perf_counter()
        http.get("/api/search/", params={"q": SEARCHES[n % len(SEARCHES)]}).raise_for_status()
        times.append(1000 * (time.perf_counter() - started))
    return percentiles(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="requests a measure")
    parser.add_argument("--scale", type=int, default=500, help="seed_demo --scale when the database is smaller")
    parser.add_argument("--port", type=int, default=8767)
    args = parser.parse_args()
    production_env("DATABASE_URL", "REDIS_URL")
    os.environ["API_THROTTLE_USER"] = "1000000/min"  # one user asks thousands of times: not a limit to measure
    token, clinic_id, conversation_id = prepare(args.scale)

    import httpx

    from conversations import read_cache
    from conversations.models import Message

    server = start_server(args.port)
    try:
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=f"http://127.0.0.1:{args.port}", headers=headers, timeout=30) as http:
            list_path, detail_path = "/api/conversations/", f"/api/conversations/{conversation_id}/"
            timed(http, list_path, 200)  # connections, plans, the database's buffers
            timed(http, detail_path, 200)
            result = {
                "benchmark": "api",
                "messages": Message.objects.count(),
                "list_warm_ms": percentiles(timed(http, list_path, args.requests)),
                "list_cold_ms": percentiles(
                    timed(http, list_path, args.requests // 3, lambda: read_cache.bump_clinic_version(clinic_id))
                ),
                "detail_warm_ms": percentiles(timed(http, detail_path, args.requests)),
                "detail_cold_ms": percentiles(
                    timed(http, detail_path, args.requests // 3, lambda: read_cache.bump_clinic_version(clinic_id))
                ),
                "search_ms": searched(http, args.requests),
            }
    finally:
        server.terminate()
        server.wait(10)
    result["statements"] = statements(token, clinic_id, conversation_id)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
