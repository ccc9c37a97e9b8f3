"""Every API error as JSON with a stable `code`, a human `detail` and, for bad input, the `field`."""

import logging

from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from conversations.errors import (
    ActionError,
    NotAMember,
    NoWhatsAppNumber,
    OutsideReplyWindow,
    StorageFailed,
    TemplatesUnavailable,
    WrongClinic,
)


class ServiceUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "unavailable"


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"


logger = logging.getLogger("conversations.api")


def as_api_exception(exc: Exception) -> Exception:
    """Domain and Django errors as the DRF exceptions that carry their status."""
    if isinstance(exc, StorageFailed | TemplatesUnavailable):
        return ServiceUnavailable(exc.detail, code=exc.code)
    if isinstance(exc, OutsideReplyWindow | NoWhatsAppNumber):
        return Conflict(exc.detail, code=exc.code)
    if isinstance(exc, ActionError):
        if exc.field:
            return exceptions.ValidationError({exc.field: [exceptions.ErrorDetail(exc.detail, code=exc.code)]})
        if isinstance(exc, NotAMember):
            return exceptions.PermissionDenied(exc.detail, code=exc.code)
        if isinstance(exc, WrongClinic):
            return exceptions.NotFound(exc.detail, code=exc.code)
        return exceptions.ValidationError({"non_field_errors": [exceptions.ErrorDetail(exc.detail, code=exc.code)]})
    if isinstance(exc, RequestDataTooBig):
        return exceptions.ValidationError({"body": [exceptions.ErrorDetail(str(exc), code="too_large")]})
    if isinstance(exc, exceptions.ParseError):
        return exceptions.ValidationError({"body": [exceptions.ErrorDetail(str(exc.detail), code="parse_error")]})
    if isinstance(exc, Http404):
        return exceptions.NotFound("Not found.", code="not_found")
    return exc


def _first_error(detail, path: str = "") -> tuple[str, exceptions.ErrorDetail]:
    if isinstance(detail, dict):
        key, value = next(iter(detail.items()))
        return _first_error(value, f"{path}.{key}" if path else str(key))
    if isinstance(detail, list) and detail:
        return _first_error(detail[0], path)
    return path, detail


def exception_handler(exc: Exception, context: dict) -> Response | None:
    exc = as_api_exception(exc)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # a bug: Django logs it and answers 500
    request = context.get("request")
    if isinstance(exc, exceptions.ValidationError):
        field, first = _first_error(exc.detail)
        body = {"code": getattr(first, "code", "invalid") or "invalid", "detail": f"{field}: {first}", "field": field}
        body["errors"] = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
    elif isinstance(getattr(exc, "detail", None), dict):  # simplejwt's InvalidToken: {"detail", "code", …}
        body = {"code": str(exc.detail.get("code", "error")), "detail": str(exc.detail.get("detail", ""))}
    else:
        codes = exc.get_codes() if isinstance(exc, exceptions.APIException) else "error"
        body = {"code": codes if isinstance(codes, str) else "error", "detail": str(getattr(exc, "detail", exc))}
        if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
            body["retry_after"] = int(exc.wait)
    logger.info(
        "api %s %s -> %s %s",
        getattr(request, "method", "?"),
        getattr(request, "path", "?"),
        response.status_code,
        body["code"],
    )
    response.data = body
    return response


def json_not_found(request: HttpRequest, exception: Exception | None = None):
    """404 for URLs no view matches: JSON under /api/, Django's page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse({"code": "not_found", "detail": "No such endpoint."}, status=status.HTTP_404_NOT_FOUND)
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def json_server_error(request: HttpRequest):
    if request.path.startswith("/api/"):
        return JsonResponse(
            {"code": "server_error", "detail": "Something failed on our side; it was logged."}, status=500
        )
    from django.views.defaults import server_error

    return server_error(request)
