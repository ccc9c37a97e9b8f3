"""The workspace when things go wrong or run long: WebSocket refused (long-poll until it is back), a send
whose connection fails (kept and sent again once), drafts across switching and reloading, older messages
on scrolling up, and the tab title counting what arrives while the tab is in the background."""

import re
import time
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import expect

from conversations.actions.inbound import receive_inbound_message
from conversations.actions.messages import mark_read
from conversations.models import Message
from e2e.conftest import in_thread, live, log_in, patient_writes, post_webhook
from e2e.test_workspace import bubbles, open_as
from realtime.tests.test_scale_out import server_env

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def desk(real_passwords, clinic, member, whatsapp_channel):
    """Júlia, and Maria's conversation with 60 messages over the last hours; Carlos's with one."""
    whatsapp_channel.simulated = True
    whatsapp_channel.save(update_fields=["simulated"])
    start = timezone.now() - timedelta(hours=2)
    for n in range(60):
        maria = receive_inbound_message(
            clinic=clinic,
            phone="5511987654321",
            contact_name="Maria Souza",
            content=f"Mensagem {n:02d}",
            happened_at=start + timedelta(minutes=n),
        )
    mark_read(user=member, conversation=maria.conversation, message=maria.message)  # read: opens at the bottom
    carlos = receive_inbound_message(clinic=clinic, phone="5511922220002", contact_name="Carlos Lima", content="Oi")
    return {"julia": real_passwords(member), "maria": maria.conversation.pk, "carlos": carlos.conversation.pk}


def test_without_websocket_the_page_long_polls_then_goes_back_to_it(desk, serve, browser):
    host = serve(server_env())
    context = browser.new_context()
    allowed = {"on": False}

    def route(ws):
        if allowed["on"]:
            ws.connect_to_server()
        else:
            ws.close()

    context.route_web_socket(re.compile(r"/ws/"), route)
    page = context.new_page()
    log_in(page, host, desk["julia"])
    page.goto(f"http://{host}/inbox/{desk['carlos']}/")
    expect(page.locator(".connection-label")).to_have_text("Modo offline", timeout=15_000)
    assert post_webhook(host, patient_writes("Carlos Lima", "5511922220002", "Chegou pelo long-poll")) == 200
    expect(bubbles(page, "Chegou pelo long-poll")).to_have_count(1, timeout=10_000)
    allowed["on"] = True
    try:
        page.get_by_role("button", name="Tentar agora").click(timeout=3_000)
    except PlaywrightTimeout:
        pass  # the backoff's own retry was quicker: the button went away as the page went live
    live(page)
    assert post_webhook(host, patient_writes("Carlos Lima", "5511922220002", "De volta ao tempo real")) == 200
    expect(bubbles(page, "De volta ao tempo real")).to_have_count(1, timeout=10_000)
    expect(bubbles(page, "Chegou pelo long-poll")).to_have_count(1)


def wait_until(page, condition, seconds: float = 20) -> None:
    for _ in range(int(seconds * 10)):
        if condition():
            return
        page.wait_for_timeout(100)
    raise AssertionError("it did not happen in time")


@pytest.mark.parametrize("fault", ["refused", "answer lost"])
def test_a_send_whose_connection_fails_is_kept_and_sent_again_once(desk, serve, browser, fault):
    """The outbox keeps the reply ("Na fila") and sends it again by itself with the same client_id: stored
    once, whether the first attempt never arrived or the server had it and only the answer was lost."""
    host = serve(server_env())
    page = open_as(browser, host, desk["julia"], f"/inbox/{desk['carlos']}/")
    failing = {"on": True}
    posts = []

    def messages_route(route):
        if route.request.method == "POST":
            posts.append(route.request.post_data_json["client_id"])
        if failing["on"] and route.request.method == "POST":
            if fault == "answer lost":
                route.fetch()  # the server stores it, and the answer is lost on the way back
            route.abort("connectionreset")
        else:
            route.continue_()

    page.route("**/api/conversations/*/messages/", messages_route)
    page.get_by_role("textbox", name="Mensagem").fill("Confirmado!")
    page.get_by_role("textbox", name="Mensagem").press("Enter")
    if fault == "refused":
        expect(page.locator(".pending-local .queued-label")).to_contain_text("Na fila", timeout=20_000)
    else:
        # The stored message may reach the page through the stream before the lost answer is noticed (the
        # bubble is then confirmed at once); either way the outbox tries again with the same client_id.
        wait_until(page, lambda: posts)
    failing["on"] = False  # the connection is back
    confirmed = page.locator(".timeline .message[data-message-id]", has_text="Confirmado!")
    expect(confirmed).to_have_count(1, timeout=15_000)  # sent again by the outbox, confirmed in place
    expect(bubbles(page, "Confirmado!")).to_have_count(1)
    expect(page.get_by_role("textbox", name="Mensagem")).to_have_value("")
    assert in_thread(Message.objects.filter(content="Confirmado!").count) == 1
    wait_until(page, lambda: len(posts) >= 2)
    assert len(set(posts)) == 1, "tried again, with the same client_id"
    assert in_thread(Message.objects.filter(content="Confirmado!").count) == 1
    page.reload()
    expect(bubbles(page, "Confirmado!")).to_have_count(1, timeout=10_000)


def test_a_draft_survives_switching_and_reloading(desk, serve, browser):
    host = serve(server_env())
    page = open_as(browser, host, desk["julia"], f"/inbox/{desk['carlos']}/")
    page.get_by_role("textbox", name="Mensagem").fill("Rascunho para o Carlos")
    page.locator(".conversation", has_text="Maria Souza").locator(".row-link").click()
    expect(page.locator(".conversation-pane h2")).to_have_text("Maria Souza", timeout=10_000)
    expect(page.get_by_role("textbox", name="Mensagem")).to_have_value("")
    page.go_back()
    expect(page.get_by_role("textbox", name="Mensagem")).to_have_value("Rascunho para o Carlos", timeout=10_000)
    page.reload()
    expect(page.get_by_role("textbox", name="Mensagem")).to_have_value("Rascunho para o Carlos", timeout=10_000)


def test_older_messages_load_on_scrolling_up_keeping_the_readers_place(desk, serve, browser):
    host = serve(server_env())
    page = open_as(browser, host, desk["julia"], f"/inbox/{desk['maria']}/")
    expect(page.locator(".timeline .message")).to_have_count(50)
    oldest_shown = page.locator(".timeline .message").first
    expect(oldest_shown).to_contain_text("Mensagem 10")
    page.locator(".timeline").evaluate("timeline => { timeline.scrollTop = 0; }")
    expect(page.locator(".timeline .message")).to_have_count(60, timeout=10_000)
    expect(page.locator(".timeline .message").first).to_contain_text("Mensagem 00")
    expect(page.locator(".timeline .message", has_text="Mensagem 10")).to_be_in_viewport()
    assert page.locator(".timeline .older").count() == 0, "nothing older is left"


def test_in_a_background_tab_the_title_counts_and_nothing_is_marked_read_until_it_is_back(desk, serve, browser):
    host = serve(server_env())
    context = browser.new_context()
    page = context.new_page()
    log_in(page, host, desk["julia"])
    page.goto(f"http://{host}/inbox/{desk['carlos']}/")
    live(page)
    title = page.title()
    carlos = page.locator(".conversation", has_text="Carlos Lima")
    expect(carlos.locator(".unread")).to_have_count(0, timeout=10_000)  # open and focused: read
    # Playwright tells every page it has the focus; a real browser tells only the tab in front.
    context.new_cdp_session(page).send("Emulation.setFocusEmulationEnabled", {"enabled": False})
    other = context.new_page()  # the receptionist switched to another tab
    other.goto("about:blank")
    other.bring_to_front()
    assert post_webhook(host, patient_writes("Carlos Lima", "5511922220002", "Alguém aí?", int(time.time()))) == 200
    expect(page).to_have_title(f"(1) {title}", timeout=10_000)
    expect(bubbles(page, "Alguém aí?")).to_have_count(1)
    expect(carlos.locator(".unread")).to_have_text("1")  # shown, but not read by anyone yet
    page.bring_to_front()
    expect(page).to_have_title(title, timeout=5_000)
    expect(carlos.locator(".unread")).to_have_count(0, timeout=10_000)


@pytest.fixture
def in_two_clinics(desk, member, other_clinic):
    from conversations.models import Membership

    Membership.objects.create(user=member, clinic=other_clinic, role="receptionist")
    return desk


def test_switching_clinic_in_one_tab_moves_every_tab_of_the_session_to_it(
    in_two_clinics, serve, clinic, other_clinic, browser
):
    """A user of two clinics: another tab of the same session switches clinic. The first tab's stream is
    closed (its clinic is no longer the session's) and the page reloads into the clinic the session works
    in now, instead of showing one clinic's list under the other's stream."""
    desk = in_two_clinics
    host = serve(server_env())
    context = browser.new_context()
    first = context.new_page()
    log_in(first, host, desk["julia"])
    first.click(f"text={clinic.name}")  # asked which clinic: two now
    live(first)
    expect(first.locator(".workspace")).to_have_attribute("data-clinic-id", str(clinic.pk))

    second = context.new_page()
    second.goto(f"http://{host}/clinics/")
    second.click(f"text={other_clinic.name}")
    expect(second.locator(".workspace")).to_have_attribute("data-clinic-id", str(other_clinic.pk))

    expect(first.locator(".workspace")).to_have_attribute("data-clinic-id", str(other_clinic.pk), timeout=10_000)
    live(first)
    context.close()
