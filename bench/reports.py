"""The manager's report of a clinic with a million messages: 90 days, warm and cold, as a client sees it.

Makes (once) the clinic `relatorios-bench`: 25,000 patients, 100,000 conversations over the last 90 days,
1,000,000 messages (patients', staff's and the assistant's), business hours with a lunch break; then its
report facts with `rebuild_report_facts` (timed: what an upgrade costs). Then, against one server process
with the production flags and a clinic admin's bearer token, `GET /api/reports/` for the last 90 days:
warm — the same request again and again (the read cache answers, as for a manager who reloads while
nothing changed); cold — the clinic's cached reads made stale before each request (the database computes
the report, as after any new message); and the first request of each freshly started server process, also
with the cache stale (nothing held in the process: connections, the clinic's hours, query plans; the
database's own buffers stay warm, as on a running installation). Also the range as CSV (one row per
attendance, streamed). From the root:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/taskmed_bench REDIS_URL=redis://127.0.0.1:6379/13 \\
        .venv/bin/python bench/reports.py --requests 30

Prints one JSON line. Traffic goes to 127.0.0.1 only.
"""

import argparse
import json
import os
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.fanout import percentiles, production_env, start_server  # noqa: E402

SLUG, ADMIN = "relatorios-bench", "bench.relatorios"
PATIENTS, CONVERSATIONS, PER_CONVERSATION = 25_000, 100_000, 10
STAFF = 6
WEEK = {day: [["08:00", "12:00"], ["13:30", "18:00"]] for day in ("mon", "tue", "wed", "thu", "fri")} | {
    "sat": [["08:00", "12:00"]],
    "sun": [],
}


def prepare(rebuild: bool) -> tuple[int, int, float | None]:
    """(the clinic's id, its messages, seconds the facts took to rebuild, or None when they were there)."""
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from conversations.actions.reporting import rebuild_report_facts
    from conversations.models import ConversationFact, Message

    clinic = _clinic()
    messages = Message.objects.filter(clinic=clinic).count()
    if messages < CONVERSATIONS * PER_CONVERSATION:
        print(f"seeding {SLUG}: {CONVERSATIONS * PER_CONVERSATION:,} messages (a few minutes)", file=sys.stderr)
        _seed(clinic)
        messages = Message.objects.filter(clinic=clinic).count()
        rebuild = True
    took = None
    if rebuild or not ConversationFact.objects.filter(clinic=clinic).exists():
        print("rebuilding the report facts from the messages", file=sys.stderr)
        started = time.perf_counter()
        rebuild_report_facts(clinic_id=clinic.pk, replace=True, progress=lambda line: print(line, file=sys.stderr))
        took = time.perf_counter() - started
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("ANALYZE conversations_conversationfact; ANALYZE conversations_activityfact")
    return clinic.pk, messages, took


def _clinic():
    from django.contrib.auth import get_user_model

    from conversations.actions.hours import set_business_hours
    from conversations.models import Clinic, Membership, Role

    clinic, _ = Clinic.objects.get_or_create(slug=SLUG, defaults={"name": "Relatórios (bench)"})
    users = get_user_model().objects
    admin, _ = users.get_or_create(username=ADMIN, defaults={"first_name": "Gestora"})
    Membership.objects.get_or_create(user=admin, clinic=clinic, defaults={"role": Role.ADMIN})
    for n in range(STAFF):
        user, _ = users.get_or_create(username=f"bench.relatorios.{n}", defaults={"first_name": f"Atendente {n}"})
        Membership.objects.get_or_create(user=user, clinic=clinic, defaults={"role": Role.RECEPTIONIST})
    set_business_hours(
        clinic=clinic,
        actor=admin,
        timezone_name="America/Sao_Paulo",
        week=WEEK,
        closed_dates=[],
        away_mode="staff",
        away_message="Estamos fora do horário.",
        first_response_target_minutes=15,
    )
    return clinic


def _seed(clinic) -> None:
    """Patients and conversations by the ORM; the messages in one INSERT … SELECT (a patient's message, then
    an answer 0–36 minutes later, five times; a third of the conversations answered by the assistant)."""
    from django.db import connection, transaction
    from django.utils import timezone

    from conversations.models import Contact, Conversation, Membership

    staff = list(Membership.objects.filter(clinic=clinic, role="receptionist").values_list("user_id", flat=True))
    start = timezone.now() - timedelta(days=90)
    spacing = timedelta(days=89) / CONVERSATIONS
    with transaction.atomic():
        Conversation.objects.filter(clinic=clinic).delete()
        Contact.objects.filter(clinic=clinic).delete()
        patients = Contact.objects.bulk_create(
            [Contact(clinic=clinic, phone=f"5511{90000000 + n:09d}", name=f"Paciente {n}") for n in range(PATIENTS)],
            batch_size=5000,
        )
        threads = []
        for n in range(CONVERSATIONS):
            opened = start + spacing * n
            last = opened + timedelta(minutes=40 * (PER_CONVERSATION // 2))
            threads.append(
                Conversation(
                    clinic=clinic,
                    contact=patients[n % PATIENTS],
                    status="open" if n >= CONVERSATIONS - PATIENTS else "resolved",
                    created_at=opened,
                    last_message_at=last,
                    updated_at=last + timedelta(minutes=30),
                )
            )
        Conversation.objects.bulk_create(threads, batch_size=5000)
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO conversations_message (clinic_id, conversation_id, direction, sender_type, sender_id, "
                "message_type, content, metadata, status, error, external_id, client_id, created_at, "
                "status_changed_at) "
                "SELECT c.clinic_id, c.id, CASE WHEN j %% 2 = 0 THEN 'inbound' ELSE 'outbound' END, "
                "CASE WHEN j %% 2 = 0 THEN 'patient' WHEN c.id %% 3 = 0 THEN 'ai' ELSE 'professional' END, "
                "CASE WHEN j %% 2 = 1 AND c.id %% 3 <> 0 THEN (%(staff)s::int[])[1 + (c.id + j) %% %(n_staff)s] END, "
                "'text', 'mensagem de teste ' || j, '{}'::jsonb, 'delivered', '', NULL, NULL, "
                "c.created_at + (j / 2) * interval '40 minutes' + CASE WHEN j %% 2 = 1 "
                "THEN (c.id %% 37) * interval '1 minute' ELSE interval '0' END, c.created_at "
                "FROM conversations_conversation c CROSS JOIN generate_series(0, %(per)s - 1) AS j "
                "WHERE c.clinic_id = %(clinic)s",
                {"staff": staff, "n_staff": len(staff), "per": PER_CONVERSATION, "clinic": clinic.pk},
            )
            cursor.execute("ANALYZE conversations_message")


def timed(http, path: str, params: dict, count: int, before=None) -> list[float]:
    times = []
    for _ in range(count):
        if before is not None:
            before()
        started = time.perf_counter()
        response = http.get(path, params=params)
        response.raise_for_status()
        if params.get("format") == "csv":
            response.read()
        times.append(1000 * (time.perf_counter() - started))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=30, help="warm requests")
    parser.add_argument("--cold", type=int, default=3, help="server starts, each measuring its first request")
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--rebuild", action="store_true", help="rebuild the facts even when they are there")
    parser.add_argument("--port", type=int, default=8768)
    args = parser.parse_args()
    production_env("DATABASE_URL", "REDIS_URL")
    os.environ["API_THROTTLE_USER"] = "1000000/min"
    clinic_id, messages, rebuild_seconds = prepare(args.rebuild)

    import httpx
    from django.utils import timezone

    from conversations import read_cache
    from conversations.management.commands.listen import Command
    from conversations.models import Clinic, ConversationFact

    clinic = Clinic.objects.get(pk=clinic_id)
    today = timezone.now().astimezone(clinic.tzinfo).date()
    params = {"from": str(today - timedelta(days=args.days - 1)), "to": str(today)}
    stale = lambda: read_cache.bump_clinic_version(clinic_id)  # noqa: E731  (the database answers)
    first, cold, warm, csv_ms, figures = [], [], [], [], {}
    for start in range(args.cold):
        server = start_server(args.port)
        try:
            headers = {"Authorization": f"Bearer {Command().issue_token(ADMIN, SLUG)}"}
            with httpx.Client(base_url=f"http://127.0.0.1:{args.port}", headers=headers, timeout=60) as http:
                first += timed(http, "/api/reports/", params, 1, stale)
                if start == args.cold - 1:
                    cold = timed(http, "/api/reports/", params, args.requests // 3, stale)
                    timed(http, "/api/reports/", params, 3)
                    warm = timed(http, "/api/reports/", params, args.requests)
                    csv_ms = timed(http, "/api/reports/", params | {"format": "csv"}, 3)
                    figures = http.get("/api/reports/", params=params).json()
        finally:
            server.terminate()
            server.wait(10)
    result = {
        "benchmark": "reports",
        "messages": messages,
        "attendances": ConversationFact.objects.filter(clinic_id=clinic_id).count(),
        "days": args.days,
        "warm_ms": percentiles(warm),
        "cold_ms": percentiles(cold),
        "first_request_ms": {"n": len(first), "max": round(max(first), 1), "each": [round(t, 1) for t in first]},
        "csv_ms": {"n": len(csv_ms), "max": round(max(csv_ms), 1)},
        "rebuild_s": round(rebuild_seconds, 1) if rebuild_seconds is not None else None,
        "first_response_median_s": figures.get("first_response", {}).get("median_seconds"),
        "inbound_in_range": figures.get("messages", {}).get("inbound"),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
