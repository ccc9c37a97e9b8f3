"""The event stream over HTTP: who is online, how many sockets are open, and whether the whole stack answers."""

import logging
import time
from datetime import timedelta

from asgiref.sync import async_to_sync
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import connection
from django.utils import timezone
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny, BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from conversations.api.auth import IsClinicAdmin
from conversations.api.outputs import UserRefOut
from conversations.api.views.base import ClinicAPIView
from realtime import bus, presence

logger = logging.getLogger(__name__)


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
        """Open WebSocket connections over every server process; a clinic admin sees only their own clinic's
        (its total too: how busy other clinics are is theirs to know)."""
        counts = async_to_sync(presence.connection_counts)()
        if not request.user.is_superuser:
            own = request.auth.membership.clinic_id
            counts = {own: counts.get(own, 0)}
        return Response({"total": sum(counts.values()), "per_clinic": counts})


def _timed(name: str, check) -> dict:
    """A check's outcome and time; a failure is logged whole and told only by its kind (the text of a
    database error names hosts and users)."""
    started = time.perf_counter()
    try:
        check()
        outcome = {"ok": True}
    except Exception as error:
        logger.error("health: %s failed", name, exc_info=True)
        outcome = {"ok": False, "error": error.__class__.__name__}
        if isinstance(error, WorkerBehind):
            outcome["detail"] = str(error)  # names no host: only the count and what to run
    return {**outcome, "ms": round(1000 * (time.perf_counter() - started), 2)}


def _database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _cache() -> None:
    cache.get("health:probe")  # a read: checking must not write on every call


class WorkerBehind(RuntimeError):
    pass


def _worker() -> None:
    from django_tasks_db.models import DBTaskResult

    overdue = DBTaskResult.objects.filter(status="READY", run_after__lt=timezone.now() - timedelta(minutes=1)).count()
    if overdue:
        raise WorkerBehind(f"{overdue} tasks waited over a minute: is `manage.py db_worker` running?")


class HealthView(APIView):
    """Liveness, for load balancers and anyone: the process answers. Nothing is checked or written."""

    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = []  # not even a counter in Redis: a probe must work while Redis is away

    @extend_schema(
        responses={200: inline_serializer("Health", {"status": serializers.CharField()})}, tags=["operations"]
    )
    def get(self, request: Request) -> Response:
        """This process is up."""
        return Response({"status": "ok"})


class IsOperator(BasePermission):
    """The support and operations team (Django staff): the installation's state is not a clinic's."""

    def has_permission(self, request: Request, view) -> bool:
        return bool(request.user and request.user.is_authenticated and request.user.is_staff)


class HealthDetailsView(APIView):
    permission_classes = [IsOperator]

    @extend_schema(
        responses={
            200: inline_serializer(
                "HealthDetails", {"status": serializers.CharField(), "checks": serializers.DictField()}
            )
        },
        tags=["operations"],
    )
    def get(self, request: Request) -> Response:
        """The database, the cache, the realtime bus (Redis) and the task worker, each with its time; 503 if
        one fails (its error's kind here, the whole of it in the log). Staff only."""
        checks = {
            "database": _timed("database", _database),
            "cache": _timed("cache", _cache),
            "bus": _timed("bus", bus.ping),
            "worker": _timed("worker", _worker),
        }
        healthy = all(c["ok"] for c in checks.values())
        return Response({"status": "ok" if healthy else "failing", "checks": checks}, status=200 if healthy else 503)
