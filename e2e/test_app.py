"""The inbox as an app that reaches the staff wherever they are: installable (manifest, service worker that
keeps only the application shell), replies typed offline kept in the browser and sent exactly once when the
connection is back — through a reload while offline and with another tab of the same user open — and the
whole workflow on a 390 px phone with a thumb (targets of 44 px), with screenshots for the README."""

import json
import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from conversations.models import Message
from e2e.conftest import in_thread, live, log_in, screenshot
from e2e.test_workspace import PNG, bubbles, open_as, team  # noqa: F401 (the fixture)
from realtime.tests.test_scale_out import server_env

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
THUMB = 44  # px: the smallest target a thumb hits reliably


def controlled(page) -> None:
    """The service worker is installed and controls the page (the shell is kept for offline use)."""
    page.wait_for_function("navigator.serviceWorker && navigator.serviceWorker.controller !== null", timeout=15_000)


def kept_urls(page) -> list[str]:
    return page.evaluate(
        """async () => {
          const names = await caches.keys();
          const urls = [];
          for (const name of names) {
            for (const request of await (await caches.open(name)).keys()) urls.push(new URL(request.url).pathname);
          }
          return urls;
        }"""
    )


def stored(content: str) -> int:
    return in_thread(Message.objects.filter(content=content).count)


def test_the_manifest_and_service_worker_are_served_and_keep_only_the_shell(team, serve, browser):  # noqa: F811
    host = serve(server_env())
    page = open_as(browser, host, team["julia"], f"/inbox/{team['maria']}/")
    manifest_link = page.locator("link[rel=manifest]").get_attribute("href")
    manifest = page.request.get(f"http://{host}{manifest_link}")
    assert manifest.ok and manifest.headers["content-type"].startswith("application/manifest+json")
    app = manifest.json()
    assert (app["name"], app["start_url"], app["display"]) == ("TaskMed Conversas", "/inbox/", "standalone")
    assert app["theme_color"] == "#0a6e69" and app["background_color"]
    sizes = {icon["sizes"] for icon in app["icons"] if icon["type"] == "image/png"}
    assert {"192x192", "512x512"} <= sizes
    assert any(icon.get("purpose") == "maskable" for icon in app["icons"])
    for icon in app["icons"]:
        fetched = page.request.get(f"http://{host}{icon['src']}")
        assert fetched.ok and fetched.headers["content-type"] == icon["type"], icon

    controlled(page)
    scope = page.evaluate("navigator.serviceWorker.getRegistration().then((r) => r.scope)")
    assert scope == f"http://{host}/"
    worker_script = page.request.get(f"http://{host}/sw.js")
    assert worker_script.headers["content-type"].startswith("text/javascript")
    assert worker_script.headers["cache-control"] == "no-cache"
    # The CSP is what it was: scripts from this origin only, nothing inline.
    csp = page.request.get(f"http://{host}/inbox/").headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]

    # After pages, fragments and the API were used, the cache holds static assets and the offline page only.
    page.get_by_role("textbox", name="Mensagem").fill("Até amanhã")
    page.get_by_role("textbox", name="Mensagem").press("Enter")
    expect(page.locator(".timeline .message[data-message-id]", has_text="Até amanhã")).to_have_count(1, timeout=10_000)
    page.goto(f"http://{host}/board/")
    page.goto(f"http://{host}/inbox/")
    live(page)
    urls = kept_urls(page)
    assert "/offline/" in urls and "/static/css/app.css" in urls
    assert all(url.startswith("/static/") or url == "/offline/" for url in urls), urls
    offline_copy = page.evaluate("caches.match('/offline/').then((response) => response.text())")
    assert "Sem conexão" in offline_copy
    for private in ("Júlia", "Maria", "Clínica Aurora", "csrf"):
        assert private not in offline_copy, f"the kept offline page holds {private!r}"


def test_a_reply_sent_offline_survives_a_reload_and_reaches_the_patient_once(team, serve, worker, browser):  # noqa: F811
    env = server_env()
    host = serve(env)
    worker(env)
    julia = open_as(browser, host, team["julia"], f"/inbox/{team['maria']}/")
    controlled(julia)
    other_tab = julia.context.new_page()  # the same user's second tab, open all along
    other_tab.goto(f"http://{host}/inbox/{team['maria']}/")
    live(other_tab)

    julia.context.set_offline(True)
    composer = julia.get_by_role("textbox", name="Mensagem")
    composer.fill("Chego às 15h, obrigada!")
    composer.press("Enter")
    queued = julia.locator(".pending-local", has_text="Chego às 15h, obrigada!")
    expect(queued.locator(".queued-label")).to_have_text(re.compile(r"^Na fila · \d{2}:\d{2}$"), timeout=10_000)
    expect(queued.get_by_role("button", name="Cancelar")).to_be_visible()
    expect(composer).to_have_value("")

    julia.reload()  # still offline: the service worker answers with the offline page, never old data
    expect(julia.get_by_role("heading", name="Sem conexão")).to_be_visible()
    expect(julia.locator("[data-queued]")).to_contain_text("1 resposta está guardada neste aparelho")
    assert "Maria" not in julia.content()
    screenshot(julia, "offline")
    assert stored("Chego às 15h, obrigada!") == 0

    julia.context.set_offline(False)  # the offline page sees the server again and goes back to the inbox
    expect(julia.locator(".conversation-pane h2")).to_have_text("Maria Souza", timeout=20_000)
    sent = bubbles(julia, "Chego às 15h, obrigada!")
    expect(sent.and_(julia.locator("[data-message-id]"))).to_have_count(1, timeout=15_000)
    expect(sent.locator(".tick")).to_have_attribute("data-tick", "read", timeout=15_000)  # through the worker
    expect(bubbles(other_tab, "Chego às 15h, obrigada!")).to_have_count(1, timeout=10_000)
    julia.wait_for_timeout(2_500)  # a second send (another tab, a retry) would have landed by now
    assert stored("Chego às 15h, obrigada!") == 1
    expect(sent).to_have_count(1)
    expect(bubbles(other_tab, "Chego às 15h, obrigada!")).to_have_count(1)
    assert julia.evaluate("import('/static/js/outbox.js').then((m) => m.waitingCount())") == 0


def test_a_queued_reply_can_be_cancelled_and_one_refused_comes_back_with_the_reason(team, serve, browser):  # noqa: F811
    host = serve(server_env())
    julia = open_as(browser, host, team["julia"], f"/inbox/{team['maria']}/")
    controlled(julia)
    composer = julia.get_by_role("textbox", name="Mensagem")
    julia.context.set_offline(True)
    composer.fill("Melhor não enviar")
    composer.press("Enter")
    queued = julia.locator(".pending-local", has_text="Melhor não enviar")
    queued.get_by_role("button", name="Cancelar").click(timeout=10_000)
    expect(queued).to_have_count(0)

    composer.fill("Podemos confirmar amanhã?")
    composer.press("Enter")
    expect(julia.locator(".pending-local .queued-label")).to_contain_text("Na fila", timeout=10_000)
    # Meanwhile the patient's 24-hour window closes.
    in_thread(
        lambda: Message.objects.filter(conversation_id=team["maria"]).update(
            created_at=timezone.now() - timedelta(hours=30)
        )
    )
    julia.context.set_offline(False)
    expect(composer).to_have_value("Podemos confirmar amanhã?", timeout=20_000)
    expect(julia.locator(".composer-error")).to_contain_text("Resposta não enviada")
    expect(julia.locator(".composer-error")).to_contain_text("24-hour window")
    expect(julia.locator(".pending-local")).to_have_count(0)
    assert stored("Melhor não enviar") == 0 and stored("Podemos confirmar amanhã?") == 0


def assert_thumb_sized(locator, name: str) -> None:
    box = locator.bounding_box()
    assert box is not None, f"{name} is not on screen"
    assert box["height"] >= THUMB and box["width"] >= THUMB, f"{name} is {box['width']}×{box['height']} px"
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390, f"{name} is out of sight sideways"


def no_sideways_scroll(page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways on a phone ({width}px)"


def test_on_a_phone_the_whole_workflow_works_with_a_thumb(team, serve, worker, browser):  # noqa: F811
    env = server_env()
    host = serve(env)
    worker(env)
    phone = open_as(browser, host, team["julia"], "/inbox/", **PHONE)
    top = phone.locator(".topbar").bounding_box()
    assert top["height"] <= 56, f"the top bar takes {top['height']} px"
    menu = phone.get_by_role("button", name="Menu")
    assert_thumb_sized(menu, "Menu")
    no_sideways_scroll(phone)
    screenshot(phone, "phone-inbox")

    # The menu holds what no longer fits: the sections, the clinic's name, Sair.
    menu.tap()
    expect(menu).to_have_attribute("aria-expanded", "true")
    for name in ("Busca", "Quadro", "Notificações", "Clínica Aurora"):
        assert_thumb_sized(phone.locator("#topbar-menu").get_by_role("link", name=name, exact=True), name)
    assert_thumb_sized(phone.get_by_role("button", name="Sair"), "Sair")
    screenshot(phone, "phone-menu")
    menu.tap()
    expect(phone.locator("#topbar-menu")).to_be_hidden()

    # The list: filters and rows a thumb can hit; a tap opens the conversation in its place.
    assert_thumb_sized(phone.get_by_role("link", name="Minhas"), "the tab Minhas")
    assert_thumb_sized(phone.locator("#search"), "the search box")
    row = phone.locator(".conversation", has_text="Maria Souza").locator(".row-link")
    assert_thumb_sized(row, "a conversation's row")
    row.tap()
    expect(phone.locator(".conversation-pane h2")).to_have_text("Maria Souza", timeout=10_000)
    expect(phone.locator(".list-pane")).to_be_hidden()
    for name, control in {
        "← Conversas": phone.get_by_role("link", name="← Conversas"),
        "Resolver": phone.get_by_role("button", name="Resolver"),
        "the composer": phone.get_by_role("textbox", name="Mensagem"),
        "Anexar": phone.locator(".composer .attach"),
        "Enviar": phone.get_by_role("button", name="Enviar", exact=True),
    }.items():
        assert_thumb_sized(control, name)
    timeline = phone.locator(".timeline").bounding_box()
    assert timeline["height"] >= 300, f"the messages get {timeline['height']} px of 844"

    # Reply with a file attached, by thumb.
    phone.set_input_files("#composer-file", files=[{"name": "exame.png", "mimeType": "image/png", "buffer": PNG}])
    phone.get_by_role("textbox", name="Mensagem").fill("Segue o pedido do exame")
    phone.get_by_role("button", name="Enviar", exact=True).tap()
    sent = bubbles(phone, "Segue o pedido do exame")
    expect(sent.locator("img")).to_have_count(1, timeout=10_000)
    expect(sent.locator(".tick")).to_have_attribute("data-tick", "read", timeout=15_000)
    no_sideways_scroll(phone)
    screenshot(phone, "phone-conversation")

    # Back to the list, then the board through the menu.
    phone.get_by_role("link", name="← Conversas").tap()
    expect(phone.locator(".list-pane")).to_be_visible(timeout=10_000)
    phone.get_by_role("button", name="Menu").tap()
    phone.locator("#topbar-menu").get_by_role("link", name="Quadro").tap()
    expect(phone.locator(".board")).to_be_visible(timeout=10_000)
    card = phone.locator(".card-item", has_text="Carlos Lima")
    assert_thumb_sized(card.locator("select"), "a card's Mover para")
    card.locator("select").select_option("pending")
    pending = phone.locator(".board-column", has_text="Pendente")
    expect(pending.locator(".card-item", has_text="Carlos Lima")).to_have_count(1, timeout=10_000)
    no_sideways_scroll(phone)


def test_a_push_the_service_worker_receives_is_shown_naming_the_clinic_and_the_conversation(team, serve, browser):  # noqa: F811
    """What the worker sends (test_push.py decrypts it at a push service stand-in), delivered to this
    browser's service worker as the push service would: a notification naming the clinic, never the patient."""
    host = serve(server_env())
    context = browser.new_context()
    context.grant_permissions(["notifications"], origin=f"http://{host}")
    page = context.new_page()
    log_in(page, host, team["julia"])
    page.goto(f"http://{host}/inbox/")
    controlled(page)
    scope = page.evaluate("navigator.serviceWorker.getRegistration().then((r) => r.scope)")
    cdp = context.new_cdp_session(page)
    registrations = []
    cdp.on("ServiceWorker.workerRegistrationUpdated", lambda event: registrations.extend(event["registrations"]))
    cdp.send("ServiceWorker.enable")
    page.wait_for_timeout(500)
    registration_id = next(r["registrationId"] for r in registrations if r["scopeURL"] == scope)
    data = {
        "kind": "message",
        "title": "Clínica Aurora",
        "body": "Nova mensagem",
        "clinic_id": 1,
        "conversation_id": team["maria"],
        "url": f"/inbox/{team['maria']}/?clinic=1",
    }
    cdp.send(
        "ServiceWorker.deliverPushMessage",
        {"origin": f"http://{host}", "registrationId": registration_id, "data": json.dumps(data)},
    )
    shown = []
    for _ in range(100):  # the worker shows it asynchronously (a promise is not something to wait_for_function on)
        shown = page.evaluate(
            """navigator.serviceWorker.ready.then((r) => r.getNotifications()).then((found) =>
                 found.map((n) => ({title: n.title, body: n.body, tag: n.tag, url: n.data.url})))"""
        )
        if shown:
            break
        page.wait_for_timeout(100)
    assert shown == [
        {
            "title": "Clínica Aurora",
            "body": "Nova mensagem",
            "tag": f"conversation-{team['maria']}",
            "url": f"/inbox/{team['maria']}/?clinic=1",
        }
    ]


def test_a_reply_discarded_while_its_attempt_is_out_is_never_brought_back(team, serve, browser):  # noqa: F811
    """Sair in another tab discards the replies kept on the device; the attempt already out, failing
    afterwards, must not write its reply back into the outbox (and send it)."""
    host = serve(server_env())
    julia = open_as(browser, host, team["julia"], f"/inbox/{team['maria']}/")
    other_tab = julia.context.new_page()
    other_tab.goto(f"http://{host}/board/")
    held = []

    def hold_first(route):
        if route.request.method == "POST" and not held:
            held.append(route)  # answered below, after the discard
        else:
            route.continue_()

    julia.route("**/api/conversations/*/messages/", hold_first)
    julia.get_by_role("textbox", name="Mensagem").fill("Esta foi descartada")
    julia.get_by_role("textbox", name="Mensagem").press("Enter")
    julia.wait_for_function("document.querySelector('.pending-local') !== null")
    for _ in range(50):
        if held:
            break
        julia.wait_for_timeout(100)
    assert held, "the attempt is out"
    user_id = int(julia.evaluate("document.body.dataset.userId"))
    assert other_tab.evaluate(f"import('/static/js/outbox.js').then((m) => m.discard({user_id}))") == 1
    held[0].abort("connectionreset")  # it never reached the server
    julia.wait_for_timeout(3_000)  # a retry would have gone by now
    assert julia.evaluate("import('/static/js/outbox.js').then((m) => m.waitingCount())") == 0
    assert stored("Esta foi descartada") == 0
