"""A database that cannot be reached is a 503 the client can retry, never a 500 (the processes keep
running and answer again once it is back)."""

import logging

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, JsonResponse

logger = logging.getLogger(__name__)


class DatabaseUnavailableMiddleware:
    """Both sync and async: a sync-only middleware would make Django run async views (the long-poll) on
    the one thread-sensitive thread, queueing every other request behind a 25-second wait."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self.__acall__(request)
        return self.get_response(request)

    async def __acall__(self, request):
        return await self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, (OperationalError, InterfaceError)):
            return None
        logger.error("%s %s: the database cannot be reached (%r)", request.method, request.path, exception)
        if request.path.startswith(("/api/", "/webhooks/")):
            body = {"code": "unavailable", "detail": "The database cannot be reached; try again shortly."}
            response = JsonResponse(body, status=503)
        else:
            response = HttpResponse(
                "O serviço está indisponível por um momento; tente de novo em instantes.",
                status=503,
                content_type="text/plain; charset=utf-8",
            )
        response["Retry-After"] = "5"
        return response
