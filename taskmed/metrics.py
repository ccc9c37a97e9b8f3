"""`/metrics`: this process's figures in Prometheus's text format, for a scraper that holds METRICS_TOKEN
(or a staff member signed in). Each server process answers for itself: scrape every port.

Requests are counted as they are answered (taskmed.asgi); everything else is read at scrape time from
where it is already kept (the stream's counters, the read cache's, the webhook's, the task queue), so the
hot paths pay nothing more for it."""

import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from conversations import read_cache
from conversations.webhooks import whatsapp
from realtime import db, hub, stats

# (route, status) → count; route is "whatsapp_webhook", "api_read" (the fast route) or "django".
requests: dict[tuple[str, int], int] = {}


def count_request(route: str, status: int) -> None:
    key = (route, status)
    requests[key] = requests.get(key, 0) + 1


STREAM = {
    "frames_durable": ("taskmed_ws_frames_total", "Frames written to sockets", {"kind": "durable"}),
    "frames_ephemeral": ("taskmed_ws_frames_total", "Frames written to sockets", {"kind": "ephemeral"}),
    "slow_client_closes": ("taskmed_ws_slow_client_closes_total", "Sockets closed 1013 for falling behind", {}),
    "gap_fills": ("taskmed_hub_gap_fills_total", "Seq gaps filled from the event log", {}),
    "resyncs": ("taskmed_hub_resyncs_total", "Clinics told to reload (too much missed)", {}),
    "bus_reconnects": ("taskmed_bus_reconnects_total", "Redis subscriptions lost and made again", {}),
    "bus_publish_failures": ("taskmed_bus_publish_failures_total", "Publishes to Redis that failed", {}),
    "bus_publish_skipped": (
        "taskmed_bus_publish_skipped_total",
        "Publishes not tried for a while after one failed (the servers read the log)",
        {},
    ),
}


class TaskMedCollector:
    def collect(self):
        http = CounterMetricFamily("taskmed_http_requests", "HTTP requests answered", labels=["route", "status"])
        for (route, status), count in sorted(requests.items()):
            http.add_metric([route, str(status)], count)
        yield http

        stored = CounterMetricFamily(
            "taskmed_whatsapp_messages_stored", "WhatsApp messages stored, by the way taken", labels=["way"]
        )
        for way, count in whatsapp.stored_by().items():
            stored.add_metric([way], count)
        yield stored

        families: dict[str, CounterMetricFamily] = {}
        for key, (name, help_text, labels) in STREAM.items():
            family = families.get(name)
            if family is None:
                family = families[name] = CounterMetricFamily(
                    name.removesuffix("_total"), help_text, labels=list(labels)
                )
            family.add_metric(list(labels.values()), stats.counts[key])
        yield from families.values()

        yield GaugeMetricFamily("taskmed_ws_connections", "WebSocket connections open", value=hub.connection_count())
        clinics, waiting = hub.subscriptions()
        yield GaugeMetricFamily("taskmed_hub_clinics", "Clinics this process is subscribed to", value=clinics)
        yield GaugeMetricFamily("taskmed_longpoll_waiting", "Long-polls waiting for an event now", value=waiting)

        caches = {
            kind: CounterMetricFamily(f"taskmed_read_cache_{kind}", f"Read cache {kind}", labels=["cache"])
            for kind in ("hits", "misses", "errors")
        }
        for cache_name, figures in read_cache.stats().items():
            for kind, family in caches.items():
                family.add_metric([cache_name], figures.get(kind, 0))
        yield from caches.values()

        away = db.breaker.open
        yield GaugeMetricFamily(
            "taskmed_database_reachable",
            "0 while the database is known to be away (requests are refused at once), else 1",
            value=0 if away else 1,
        )
        if away:
            return  # the queue is in the database: nothing to read until it answers again
        depth, oldest = delivery_queue()
        yield GaugeMetricFamily("taskmed_task_queue_depth", "Tasks waiting to run (due now)", value=depth)
        yield GaugeMetricFamily(
            "taskmed_task_queue_oldest_seconds", "How long the oldest due task has waited", value=oldest
        )


def delivery_queue() -> tuple[int, float]:
    """Tasks due and not yet run, and how long the oldest has been due (deliveries, media, receipts)."""
    from django_tasks_db.models import DBTaskResult

    now = timezone.now()
    due = DBTaskResult.objects.filter(status="READY", run_after__lte=now)
    first = due.order_by("run_after").values_list("run_after", flat=True).first()
    return due.count(), (now - first).total_seconds() if first else 0.0


_registered = False


def register() -> None:
    global _registered
    if not _registered:
        REGISTRY.register(TaskMedCollector())
        _registered = True


def _allowed(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    given = request.headers.get("Authorization", "")
    if token and given.startswith("Bearer ") and hmac.compare_digest(given[7:].encode(), token.encode()):
        return True
    return bool(request.user.is_authenticated and request.user.is_staff)


def metrics(request: HttpRequest) -> HttpResponse:
    if not _allowed(request):
        return JsonResponse(
            {"code": "forbidden", "detail": "Metrics are for the scraper's METRICS_TOKEN or signed-in staff."},
            status=403,
        )
    register()
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
