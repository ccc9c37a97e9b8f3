"""The event stream over HTTP: who is online, how many sockets are open, and whether the whole stack answers."""

import asyncio
import time
import uuid
from datetime import timedelta

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import connection
from django.utils import timezone
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from conversations.api.auth import IsClinicAdmin
from conversations.api.outputs import UserRefOut
from conversations.api.views.base import ClinicAPIView
from realtime import presence


class PresenceView(ClinicAPIView):
    @extend_schema(
        responses=inline_serializer("Presence", {"online": UserRefOut(many=True)}),
        tags=["realtime"],
    )
    def get(self, request: Request) -> Response:
        """The clinic's staff online now, on any server process (for the page's first render)."""
        user_ids = async_to_sync(presence.online_users)(self.clinic.pk)
        users = get_user_model().objects.filter(pk__in=user_ids, memberships__clinic=self.clinic).order_by("first_name")
        return Response({"online": UserRefOut(users, many=True).data})


class SocketStatsView(APIView):
    permission_classes = [IsClinicAdmin]

    @extend_schema(
        responses=inline_serializer(
            "SocketStats", {"total": serializers.IntegerField(), "per_clinic": serializers.DictField()}
        ),
        tags=["operations"],
    )
    def get(self, request: Request) -> Response:
        """Open WebSocket connections over every server process; clinic admins see their own clinic's."""
        counts = async_to_sync(presence.connection_counts)()
        total = sum(counts.values())
        if not request.user.is_superuser:
            own = request.auth.membership.clinic_id
            counts = {own: counts.get(own, 0)}
        return Response({"total": total, "per_clinic": counts})


def _timed(check) -> dict:
    started = time.perf_counter()
    try:
        detail = check()
        ok = True
    except Exception as error:
        detail, ok = f"{error.__class__.__name__}: {error}"[:200], False
    return {"ok": ok, "ms": round(1000 * (time.perf_counter() - started), 2), **({"detail": detail} if detail else {})}


def _database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _cache() -> None:
    key = f"health:{uuid.uuid4().hex}"
    cache.set(key, "ok", 10)
    if cache.get(key) != "ok":
        raise RuntimeError("the cache did not return what was stored")
    cache.delete(key)


async def _layer_round_trip() -> None:
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "health.ping"})
    await asyncio.wait_for(layer.receive(channel), timeout=2)


def _worker() -> str | None:
    from django_tasks_db.models import DBTaskResult

    overdue = DBTaskResult.objects.filter(status="READY", run_after__lt=timezone.now() - timedelta(minutes=1)).count()
    if overdue:
        raise RuntimeError(f"{overdue} tasks waited over a minute: is `manage.py db_worker` running?")
    return None


class HealthView(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = []

    @extend_schema(
        responses={
            200: inline_serializer("Health", {"status": serializers.CharField(), "checks": serializers.DictField()})
        },
        tags=["operations"],
    )
    def get(self, request: Request) -> Response:
        """The database, the cache, a real channel-layer round trip and the task worker; 503 if any fails."""
        checks = {
            "database": _timed(_database),
            "cache": _timed(_cache),
            "channel_layer": _timed(async_to_sync(_layer_round_trip)),
            "worker": _timed(_worker),
        }
        healthy = all(c["ok"] for c in checks.values())
        return Response({"status": "ok" if healthy else "failing", "checks": checks}, status=200 if healthy else 503)
