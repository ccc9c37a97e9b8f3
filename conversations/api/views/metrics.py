"""Operational figures of this server process, for the clinic's admins and the support team."""

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from conversations import read_cache
from conversations.api.auth import IsClinicAdmin


class MetricsView(APIView):
    permission_classes = [IsClinicAdmin]

    @extend_schema(
        responses=inline_serializer(
            "Metrics", {"read_cache_enabled": serializers.BooleanField(), "caches": serializers.DictField()}
        ),
        tags=["operations"],
    )
    def get(self, request: Request) -> Response:
        """Hits, misses, errors and timings of each read cache, counted by this server process."""
        return Response({"read_cache_enabled": read_cache.enabled(), "caches": read_cache.stats()})
