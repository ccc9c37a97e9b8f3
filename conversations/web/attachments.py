"""`/media/attachments/<id>/`: a message's file, only to staff of its clinic, never rendered as a page.

Authorised by the browser's session (its active clinic) or an API bearer token, as the API is. Images,
audio and video are shown inline; anything else downloads. Every answer says `nosniff` and sandboxes
the file, so an HTML or SVG file uploaded by anyone can never run in the app's origin.
"""

import logging

from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.views.decorators.http import require_GET
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

from conversations.access import active_membership
from conversations.api.auth import ClinicJWTAuthentication
from conversations.models import Membership, MessageAttachment

logger = logging.getLogger(__name__)
# Shown in the page: the types a browser plays or draws without running anything.
INLINE_TYPES = {"image/jpeg", "image/png", "image/webp", "image/gif"}
INLINE_PREFIXES = ("audio/", "video/")


def _caller(request: HttpRequest) -> Membership | None:
    if request.headers.get("Authorization", "").lower().startswith("bearer "):
        try:
            result = ClinicJWTAuthentication().authenticate(Request(request))
        except AuthenticationFailed:
            return None
        return result[1].membership if result else None
    if request.user.is_authenticated:
        return active_membership(request)
    return None


def shown_inline(content_type: str) -> bool:
    return content_type in INLINE_TYPES or content_type.startswith(INLINE_PREFIXES)


@require_GET
def attachment(request: HttpRequest, attachment_id: int) -> HttpResponse:
    membership = _caller(request)
    if membership is None:
        return HttpResponse("Sign in to see this file.", status=401, content_type="text/plain")
    found = (
        MessageAttachment.objects.filter(pk=attachment_id, message__clinic_id=membership.clinic_id)
        .only("file", "file_name", "content_type")
        .first()
    )
    if found is None or not found.file:
        raise Http404("No such file in your clinic.")  # another clinic's file does not exist here
    try:
        handle = found.file.open("rb")
    except FileNotFoundError:
        logger.warning("attachment %s is missing from storage", attachment_id)
        raise Http404("The file is no longer stored.") from None
    inline = shown_inline(found.content_type)
    response = FileResponse(
        handle,
        as_attachment=not inline,
        filename=found.file_name,
        content_type=found.content_type if inline else "application/octet-stream",
    )
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "sandbox; default-src 'none'; img-src 'self'; media-src 'self'"
    response["Cache-Control"] = "private, max-age=3600"
    return response
