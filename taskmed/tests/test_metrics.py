"""/metrics: Prometheus's text format, for the scraper's token or signed-in staff, with what an operator
watches: requests, webhook outcomes, frames, connections, cache hits and misses, the task queue."""

import json
from datetime import timedelta

import httpx
import pytest
from channels.db import database_sync_to_async
from django.test import AsyncClient
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from conversations.tasks import deliver_message
from realtime.tests.test_consumer import access_token, as_member

pytestmark = pytest.mark.django_db(transaction=True)


def samples(text: str) -> dict[tuple, float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def served():
    """The application as uvicorn runs it (taskmed.asgi, where requests are counted)."""
    from taskmed.asgi import application

    return httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url="http://127.0.0.1")


async def scrape(settings) -> dict[tuple, float]:
    async with served() as http:
        response = await http.get("/metrics", headers={"Authorization": "Bearer scraper-secret"})
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/plain")
    return samples(response.text)


async def test_metrics_need_the_scrapers_token_or_staff(settings, client, member, django_user_model):
    settings.METRICS_TOKEN = "scraper-secret"
    assert (await AsyncClient().get("/metrics")).status_code == 403
    assert (await AsyncClient().get("/metrics", headers={"Authorization": "Bearer wrong"})).status_code == 403
    staff = await database_sync_to_async(django_user_model.objects.create_user)("ops", is_staff=True)
    browser = AsyncClient()
    await browser.aforce_login(member)  # clinic staff: not operations
    assert (await browser.get("/metrics")).status_code == 403
    await browser.aforce_login(staff)
    assert (await browser.get("/metrics")).status_code == 200


async def test_metrics_count_what_operators_watch(settings, clinic, member, whatsapp_channel):
    from conftest import APP_SECRET, whatsapp_payload
    from conversations.webhooks.whatsapp import signature_of

    settings.METRICS_TOKEN = "scraper-secret"
    settings.READ_CACHE = True  # on without Redis too (its default follows REDIS_URL): its figures are read
    before = await scrape(settings)
    sockets = [await as_member(member, clinic), await as_member(member, clinic)]
    body = json.dumps(whatsapp_payload("text")).encode()
    async with served() as http:
        posted = await http.post(
            "/webhooks/whatsapp/",
            content=body,
            headers={"Content-Type": "application/json", "X-Hub-Signature-256": signature_of(body, APP_SECRET)},
        )
    assert posted.status_code == 200
    waiting_since = timezone.now() - timedelta(seconds=30)
    await database_sync_to_async(lambda: deliver_message.using(run_after=waiting_since).enqueue(1))()
    for ws in sockets:  # each socket gets its frames
        assert (await ws.receive_json_from(5))["type"]
    token = await database_sync_to_async(access_token)(member)
    async with served() as http:
        for _ in range(2):  # the list: read, then read again from the cache
            listed = await http.get("/api/conversations/", headers={"Authorization": f"Bearer {token}"})
            assert listed.status_code == 200
    after = await scrape(settings)

    def grew(name, **labels):
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0) - before.get(key, 0)

    ways = ("event_loop", "few_statements", "full_action")
    assert sum(grew("taskmed_whatsapp_messages_stored_total", way=way) for way in ways) == 1
    assert grew("taskmed_ws_frames_total", kind="durable") >= 2 * 2  # conversation:new + message:new, 2 sockets
    assert after[("taskmed_ws_connections", ())] == 2
    assert after[("taskmed_task_queue_depth", ())] >= 1
    assert after[("taskmed_task_queue_oldest_seconds", ())] >= 30
    assert after[("taskmed_hub_clinics", ())] == 1 and after[("taskmed_longpoll_waiting", ())] == 0

    def grew_in_any(name):
        return sum(v - before.get(k, 0) for k, v in after.items() if k[0] == name)

    assert grew_in_any("taskmed_read_cache_misses_total") >= 1 and grew_in_any("taskmed_read_cache_hits_total") >= 1
    for failures in ("taskmed_bus_publish_failures_total", "taskmed_bus_reconnects_total"):
        assert (failures, ()) in after, f"{failures} is exported (0 while Redis is well)"
    assert grew("taskmed_http_requests_total", route="whatsapp_webhook", status="200") == 1
    assert grew("taskmed_http_requests_total", route="django", status="200") == 1  # the first scrape
    assert grew("taskmed_http_request_duration_seconds_count", route="whatsapp_webhook") == 1
    assert grew("taskmed_http_request_duration_seconds_bucket", route="whatsapp_webhook", le="+Inf") == 1
    assert grew("taskmed_ws_connects_total") == 2 and grew("taskmed_ws_disconnects_total") == 0
    if settings.REDIS_URL:  # the sockets' process hears the others: its subscription is up
        assert after[("taskmed_redis_reachable", ())] == 1
    else:
        assert not any(k[0] == "taskmed_redis_reachable" for k in after), "no bus here: nothing to be reached"
    for ws in sockets:
        await ws.disconnect()
    ended = ("taskmed_ws_disconnects_total", ())
    assert (await scrape(settings))[ended] - before[ended] == 2


async def test_metrics_show_the_last_minutes_delivery_outcomes(settings, clinic, member):
    from conversations.models import Contact, Conversation, DeliveryAttempt, Message

    settings.METRICS_TOKEN = "scraper-secret"

    def attempts():
        contact = Contact.objects.create(clinic=clinic, phone="5511987650000", name="Paciente")
        conversation = Conversation.objects.create(clinic=clinic, contact=contact)
        now = timezone.now()
        for number, (outcome, finished) in enumerate(
            [("sent", now), ("rejected", now), ("not_sent", now), ("rejected", now - timedelta(minutes=6))], 1
        ):
            message = Message.objects.create(
                clinic=clinic,
                conversation=conversation,
                direction="outbound",
                sender_type="professional",
                content=f"m{number}",
            )
            DeliveryAttempt.objects.create(
                message=message, number=1, provider="whatsapp", outcome=outcome, finished_at=finished
            )
        DeliveryAttempt.objects.create(message=message, number=2, provider="whatsapp")  # in flight: not counted

    await database_sync_to_async(attempts)()
    scraped = await scrape(settings)
    recent = {k[1][0][1]: v for k, v in scraped.items() if k[0] == "taskmed_delivery_attempts_recent"}
    assert recent == {"sent": 1, "rejected": 1, "not_sent": 1, "unknown": 0}, "an older one is out of the window"
