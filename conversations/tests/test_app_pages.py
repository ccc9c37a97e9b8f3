"""The installable app's pages over HTTP: the manifest, the service worker at the root, the offline page the
same for everyone (the service worker keeps it, so it must hold no one's data), and the notification
preferences page, which shows only the member's own clinic."""

import json

import pytest

pytestmark = pytest.mark.django_db


def test_the_manifest_names_the_product_with_its_icons_and_colours(client):
    response = client.get("/manifest.webmanifest")
    assert response.status_code == 200 and response["Content-Type"] == "application/manifest+json"
    app = json.loads(response.content)
    assert app["name"] == "TaskMed Conversas" and app["short_name"] == "TaskMed"
    assert app["start_url"] == "/inbox/" and app["scope"] == "/" and app["display"] == "standalone"
    assert app["theme_color"] == "#0a6e69" and app["background_color"] == "#f3f5f7"
    assert {(icon["sizes"], icon.get("purpose", "any")) for icon in app["icons"]} >= {
        ("192x192", "any"),
        ("512x512", "any"),
        ("512x512", "maskable"),
    }


def test_the_service_worker_is_served_from_the_root_and_never_kept_stale(client):
    response = client.get("/sw.js")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/javascript")
    assert response["Cache-Control"] == "no-cache" and response["Service-Worker-Allowed"] == "/"
    script = b"".join(response.streaming_content).decode()
    assert 'addEventListener("push"' in script and 'addEventListener("fetch"' in script
    assert client.post("/sw.js").status_code == 405


def test_the_offline_page_is_the_same_for_everyone_and_holds_no_ones_data(client, member, clinic):
    anonymous = client.get("/offline/")
    client.force_login(member)
    client.get("/inbox/")  # a clinic chosen, a CSRF token made
    signed_in = client.get("/offline/")
    assert anonymous.status_code == signed_in.status_code == 200
    assert anonymous.content == signed_in.content, "the same page whoever asks"
    page = signed_in.text
    assert "Sem conexão" in page and anonymous["Cache-Control"] == "no-store"
    for private in (member.first_name, member.username, clinic.name, "csrf"):
        assert private not in page
    assert "Content-Security-Policy" in signed_in


def test_every_page_links_the_manifest_and_loads_the_app_script(client, member):
    client.force_login(member)
    page = client.get("/inbox/").text
    assert '<link rel="manifest" href="/manifest.webmanifest">' in page
    assert '<script type="module" src="/static/js/app.js"></script>' in page
    assert 'aria-controls="topbar-menu"' in page and f'data-user-id="{member.pk}"' in page


def test_the_notification_preferences_need_a_login_and_show_the_members_own_clinic(
    client, member, clinic, outsider, other_clinic, settings
):
    assert client.get("/settings/notifications/").status_code == 302
    settings.WEB_PUSH_PUBLIC_KEY, settings.WEB_PUSH_PRIVATE_KEY = "public", "private"
    client.force_login(member)
    page = client.get("/settings/notifications/").text
    assert "Notificações neste aparelho" in page and clinic.name in page and other_clinic.name not in page
    assert 'data-push-enabled="yes"' in page
    client.force_login(outsider)
    page = client.get("/settings/notifications/").text
    assert other_clinic.name in page and clinic.name not in page


def test_without_vapid_keys_the_preferences_page_says_push_is_off(client, member, settings):
    settings.WEB_PUSH_PUBLIC_KEY = settings.WEB_PUSH_PRIVATE_KEY = ""
    client.force_login(member)
    page = client.get("/settings/notifications/").text
    assert 'data-push-enabled="no"' in page and "não estão ativadas neste servidor" in page
