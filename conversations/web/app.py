"""The inbox as an installable app (DESIGN §12): the web app manifest, the service worker at the site's root
(its scope is the whole inbox), the *Sem conexão* page it shows when a page cannot be reached, and each
member's notification preferences for this device (`/settings/notifications/`).

The service worker caches the application shell only — static assets and the offline page, which holds no
one's data — never a page, an API answer or a patient's file (docs/security.md)."""

from django.conf import settings
from django.contrib.staticfiles import finders
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.templatetags.static import static
from django.views.decorators.http import require_GET

from conversations import push
from conversations.models import Membership
from conversations.web.inbox import workspace

NAME = "TaskMed Conversas"
THEME = "#0a6e69"  # --brand in app.css
BACKGROUND = "#f3f5f7"  # --bg


@require_GET
def manifest(request: HttpRequest) -> JsonResponse:
    icons = [
        {"src": static("icons/icon-192.png"), "sizes": "192x192", "type": "image/png"},
        {"src": static("icons/icon-512.png"), "sizes": "512x512", "type": "image/png"},
        {"src": static("icons/maskable-512.png"), "sizes": "512x512", "type": "image/png", "purpose": "maskable"},
        {"src": static("favicon.svg"), "sizes": "any", "type": "image/svg+xml"},
    ]
    response = JsonResponse(
        {
            "name": NAME,
            "short_name": "TaskMed",
            "description": "As conversas de WhatsApp da clínica, em tempo real.",
            "lang": "pt-BR",
            "id": "/inbox/",
            "start_url": "/inbox/",
            "scope": "/",
            "display": "standalone",
            "orientation": "any",
            "theme_color": THEME,
            "background_color": BACKGROUND,
            "icons": icons,
        },
        json_dumps_params={"ensure_ascii": False},
    )
    response["Content-Type"] = "application/manifest+json"
    response["Cache-Control"] = "public, max-age=3600"
    return response


@require_GET
def service_worker(request: HttpRequest) -> FileResponse:
    """static/js/sw.js, served from the root so that its scope is every page; never cached by the browser's
    HTTP cache, so a new version reaches every device on its next visit."""
    found = finders.find("js/sw.js") or (settings.STATIC_ROOT / "js" / "sw.js")
    try:
        response = FileResponse(open(found, "rb"), content_type="text/javascript; charset=utf-8")
    except OSError as missing:
        raise Http404("service worker") from missing
    response["Cache-Control"] = "no-cache"
    response["Service-Worker-Allowed"] = "/"
    return response


@require_GET
def offline(request: HttpRequest) -> HttpResponse:
    """What the service worker shows when a page cannot be reached. The same for everyone (the service worker
    keeps a copy): no name, no clinic, no token — the user is deliberately not looked at."""
    response = render(request, "offline.html", {"name": NAME, "theme": THEME})
    response["Cache-Control"] = "no-store"
    return response


def notification_settings(request: HttpRequest, membership: Membership) -> HttpResponse:
    """This member's push notifications on this device: the page's script subscribes the browser and sends
    what it wants to hear of (PUT /api/push/subscription/)."""
    return render(
        request,
        "conversations/notifications.html",
        {"clinic": membership.clinic, "section": "notifications", "push_enabled": push.configured()},
    )


notification_settings = workspace(notification_settings)
