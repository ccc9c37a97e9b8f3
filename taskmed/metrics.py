"""`/metrics`: this process's figures in Prometheus's text format, for a scraper that holds METRICS_TOKEN
(or a staff member signed in). Each server process answers for itself: scrape every port.

Requests are counted as they are answered (taskmed.asgi); everything else is read at scrape time from
where it is already kept (the stream's counters, the read cache's, the webhook's, the task queue), so the
hot paths pay nothing more for it."""

import hmac
from datetime import timedelta

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from conversations import read_cache
from conversations.webhooks import whatsapp
from realtime import db, hub, stats

# (route, status) → count; route is "whatsapp_webhook", "api_read" (the fast route) or "django".
requests: dict[tuple[str, int], int] = {}
# Request → answer begun, by route (the webhook's latency is what Meta waits on; alerts watch it).
REQUEST_SECONDS = Histogram(
    "taskmed_http_request_duration_seconds",
    "Time from a request's arrival to its answer's start",
    ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=None,
)
_observe = {route: REQUEST_SECONDS.labels(route).observe for route in ("whatsapp_webhook", "api_read", "django")}
DELIVERY_WINDOW = timedelta(minutes=5)


def count_request(route: str, status: int, seconds: float) -> None:
    key = (route, status)
    requests[key] = requests.get(key, 0) + 1
    _observe[route](seconds)


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
    "bus_received": (
        "taskmed_bus_messages_received_total",
        "Frames heard from the other processes over Redis (what clinic affinity cuts)",
        {},
    ),
    "ws_connects": ("taskmed_ws_connects_total", "Sockets that said hello", {}),
    "ws_disconnects": ("taskmed_ws_disconnects_total", "Sockets that said hello and have ended", {}),
}


class TaskMedCollector:
    def collect(self):
        http = CounterMetricFamily("taskmed_http_requests", "HTTP requests answered", labels=["route", "status"])
        for (route, status), count in sorted(requests.items()):
            http.add_metric([route, str(status)], count)
        yield http
        yield from REQUEST_SECONDS.collect()

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
        if (heard := hub.bus_connected()) is not None:
            yield GaugeMetricFamily(
                "taskmed_redis_reachable",
                "1 while this process's Redis subscription is up (it hears the other processes), else 0",
                value=1 if heard else 0,
            )

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
        recent = GaugeMetricFamily(
            "taskmed_delivery_attempts_recent",
            "Calls to the provider for outbound messages finished in the last 5 minutes, by outcome "
            "(the same figure from every process: it is read from the database)",
            labels=["outcome"],
        )
        for outcome, count in recent_delivery_outcomes().items():
            recent.add_metric([outcome], count)
        yield recent


def delivery_queue() -> tuple[int, float]:
    """Tasks due and not yet run, and how long the oldest has been due (deliveries, media, receipts)."""
    from django_tasks_db.models import DBTaskResult

    now = timezone.now()
    due = DBTaskResult.objects.filter(status="READY", run_after__lte=now)
    first = due.order_by("run_after").values_list("run_after", flat=True).first()
    return due.count(), (now - first).total_seconds() if first else 0.0


def recent_delivery_outcomes() -> dict[str, int]:
    """Delivery attempts finished within DELIVERY_WINDOW, by outcome (every outcome listed, 0 or more)."""
    from django.db.models import Count

    from conversations.models import DeliveryAttempt

    since = timezone.now() - DELIVERY_WINDOW
    counts = dict.fromkeys((o for o in DeliveryAttempt.Outcome.values if o != "in_flight"), 0)
    finished = DeliveryAttempt.objects.filter(finished_at__gte=since).values_list("outcome").annotate(n=Count("id"))
    for outcome, count in finished:
        counts[outcome] = count
    return counts


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
