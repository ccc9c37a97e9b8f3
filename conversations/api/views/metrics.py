"""Operational figures of this server process, for the clinic's admins and the support team."""

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from conversations import read_cache
from conversations.api.auth import IsClinicAdmin
from conversations.webhooks import whatsapp


class MetricsView(APIView):
    permission_classes = [IsClinicAdmin]

    @extend_schema(
        responses=inline_serializer(
            "Metrics",
            {
                "read_cache_enabled": serializers.BooleanField(),
                "caches": serializers.DictField(),
                "whatsapp_messages_stored_by": serializers.DictField(child=serializers.IntegerField()),
            },
        ),
        tags=["operations"],
    )
    def get(self, request: Request) -> Response:
        """Hits, misses, errors and timings of each read cache, and how WhatsApp messages were stored
        (on the event loop, in a few statements, or through the full action), counted by this process: a
        clinic admin's clinic's alone; every clinic's for the support team (superusers)."""
        clinic_id = None if request.user.is_superuser else request.auth.membership.clinic_id
        return Response(
            {
                "read_cache_enabled": read_cache.enabled(),
                "caches": read_cache.stats(clinic_id),
                "whatsapp_messages_stored_by": whatsapp.stored_by(clinic_id),
            }
        )
