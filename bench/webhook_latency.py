"""Latency from a signed WhatsApp webhook to its `message:new` frame on a connected WebSocket client.

Run against a running server whose database holds the demo data (`make run`, or uvicorn with
DATABASE_URL/REDIS_URL), from the project root:

    .venv/bin/python bench/webhook_latency.py --url http://127.0.0.1:8000 --count 200

It issues a token for --user (demo: julia.recepcao) through the server's database, connects one client,
posts --count webhooks one at a time, and prints the percentiles. Traffic goes to the given URL only.
"""

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "taskmed.settings")


def setup(user: str, slug: str | None) -> tuple[str, str, str]:
    import django

    django.setup()
    from conversations.management.commands.listen import Command
    from conversations.models import Clinic
    from conversations.providers import channel_of

    token = Command().issue_token(user, slug)
    clinic = Clinic.objects.get(slug=slug) if slug else Clinic.objects.filter(memberships__user__username=user).first()
    channel = channel_of(clinic.pk)
    return token, channel.phone_number_id, channel.app_secret


async def run(url: str, count: int, token: str, number_id: str, secret: str) -> list[float]:
    import httpx
    from websockets.asyncio.client import connect

    from conversations.management.commands.simulate_patients import notification
    from conversations.webhooks.whatsapp import signature_of

    host = url.split("://", 1)[1]
    latencies = []
    async with connect(f"ws://{host}/ws/", additional_headers={"Authorization": f"Bearer {token}"}, origin=url) as ws:
        await ws.recv()
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            for n in range(count):
                body = json.dumps(
                    notification(number_id, f"bench {n}", n, phone="5511999990000", name="Bench")
                ).encode()
                started = time.perf_counter()
                response = await http.post(
                    "/webhooks/whatsapp/",
                    content=body,
                    headers={"Content-Type": "application/json", "X-Hub-Signature-256": signature_of(body, secret)},
                )
                response.raise_for_status()
                while True:
                    frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
                    if frame["type"] == "message:new" and frame["data"]["message"]["content"] == f"bench {n}":
                        break
                latencies.append(1000 * (time.perf_counter() - started))
    return latencies


def main() -> None:
    import logging

    logging.getLogger("httpx").setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--user", default="julia.recepcao")
    parser.add_argument("--clinic", default=None)
    args = parser.parse_args()
    token, number_id, secret = setup(args.user, args.clinic)
    latencies = asyncio.run(run(args.url.rstrip("/"), args.count, token, number_id, secret))
    q = statistics.quantiles(latencies, n=100)
    p50, p90, p99 = q[49], q[89], q[98]
    worst = max(latencies)
    print(
        f"{len(latencies)} webhooks → frame: p50 {p50:.1f} ms, p90 {p90:.1f} ms, p99 {p99:.1f} ms, max {worst:.1f} ms"
    )
    print("(webhook POST, its transaction with the clinic seq, on-commit broadcast, and the frame received)")


if __name__ == "__main__":
    main()
