"""The inbox list in a real browser (Debian's Chromium, driven by Playwright) against a real server
process: a patient's WhatsApp message appears in the open list without a reload, in the server's order."""

import time
from datetime import datetime

import pytest
from playwright.sync_api import expect

from conversations.actions.inbound import receive_inbound_message
from conversations.actions.messages import send_outbound_message
from conversations.models import Conversation
from e2e.conftest import in_thread, live, log_in, patient_writes, post_webhook
from realtime.tests.test_scale_out import server_env

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def inbox_ready(real_passwords, clinic, member, whatsapp_channel):
    """Everything in the database before the browser starts: Playwright's loop then owns this thread."""
    type(member).objects.create_superuser("suporte", "suporte@example.com", "senha-de-teste-123")
    receive_inbound_message(clinic=clinic, phone="5511911110001", contact_name="Ana Souza", content="Bom dia")
    return real_passwords(member)


def test_a_new_whatsapp_message_appears_in_the_open_inbox(inbox_ready, serve, browser):
    host = serve(server_env())
    page = browser.new_page()
    sockets = []
    page.on("websocket", lambda socket: sockets.append(socket.url))
    log_in(page, host, inbox_ready)
    live(page)
    clinic_id = page.locator(".workspace").get_attribute("data-clinic-id")
    assert sockets and all(f"clinic={clinic_id}" in url for url in sockets), "the clinic rides along for nginx"

    now = int(time.time())
    assert post_webhook(host, patient_writes("Sheena Nelson", "5511987654321", "Tem em outra cor?", now)) == 200
    row = page.locator(".conversation", has_text="Sheena Nelson")
    row.wait_for(timeout=10_000)
    assert "Tem em outra cor?" in row.inner_text()
    assert row.locator(".unread").inner_text() == "1"
    assert page.locator(".conversation").first.inner_text().startswith("Sheena Nelson"), "newest activity first"

    # A message WhatsApp delivers late, stamped a day ago, takes its place in time: below the newer ones,
    # where the list also puts it after a reload.
    late = patient_writes("Carlos Lima", "5511922220002", "Mensagem de ontem", now - 86_400)
    assert post_webhook(host, late) == 200
    page.locator(".conversation", has_text="Carlos Lima").wait_for(timeout=10_000)
    live_order = page.locator(".conversation .name").all_inner_texts()
    assert live_order == ["Sheena Nelson", "Ana Souza", "Carlos Lima"]
    # Sheena's own message of an hour ago, delivered late: counted unread, but not shown as her latest.
    assert post_webhook(host, patient_writes("Sheena Nelson", "5511987654321", "Oi, uma hora atrás", now - 3600)) == 200
    expect(row.locator(".unread")).to_have_text("2", timeout=10_000)
    assert "Tem em outra cor?" in row.inner_text() and "uma hora atrás" not in row.inner_text()
    page.reload()
    page.wait_for_selector("text=Carlos Lima")
    assert page.locator(".conversation .name").all_inner_texts() == live_order, "the live order is the server's"


def test_a_contact_renamed_by_support_is_renamed_in_the_open_inbox(inbox_ready, serve, browser):
    host = serve(server_env())
    inbox = browser.new_page()
    log_in(inbox, host, inbox_ready)
    live(inbox)

    support = browser.new_context().new_page()  # another person, in the admin
    log_in(support, host, "suporte", "/admin/login/")
    support.goto(f"http://{host}/admin/conversations/contact/")
    support.click("text=Ana Souza")
    support.fill("#id_name", "Ana Souza Lima")
    support.click("input[name=_save]")
    support.wait_for_selector(".messagelist")

    inbox.locator(".conversation .name", has_text="Ana Souza Lima").wait_for(timeout=10_000)


def row_as_shown(row) -> dict:
    """What a receptionist reads in a row (its wait apart: that ticks), and when it says it was active."""
    return {
        "text": row.evaluate(
            "(node) => { const copy = node.cloneNode(true); copy.querySelector('.waiting')?.remove();"
            " return copy.innerText.replace(/\\s+/g, ' ').trim(); }"
        ),
        "unread": row.locator(".unread").get_attribute("aria-label"),
        "waiting": row.locator(".waiting").count(),
        "activity": datetime.fromisoformat(row.get_attribute("data-activity")),
        "class": row.get_attribute("class"),
    }


def next_second() -> int:
    """A WhatsApp timestamp (whole seconds) later than anything stamped so far."""
    time.sleep(1.05 - time.time() % 1)
    return int(time.time())


def test_a_patient_writing_again_updates_the_row_from_the_frame_as_the_server_renders_it(
    inbox_ready, serve, browser, member
):
    host = serve(server_env())
    page = browser.new_page(locale="pt-BR")  # the staff's own language, which the server renders in
    asked = []
    page.on("request", lambda request: asked.append(request.url) if "/inbox/rows/" in request.url else None)
    log_in(page, host, inbox_ready)
    live(page)
    row = page.locator(".conversation", has_text="Ana Souza")
    ana = "Ana Souza", "5511911110001"
    assert post_webhook(host, patient_writes(*ana, "Oi, sou eu de novo", next_second())) == 200
    expect(row.locator(".preview")).to_have_text("Oi, sou eu de novo", timeout=10_000)  # her profile: asked for

    # Her next message, long, with accents and an emoji: the row is updated from the frame alone.
    asked.clear()
    text = "Olá! Posso remarcar para quinta às 15h? 🙏 É que surgiu um compromisso no trabalho e não chego a tempo."
    assert post_webhook(host, patient_writes(*ana, text, next_second())) == 200
    expect(row.locator(".unread")).to_have_text("3", timeout=10_000)
    page.wait_for_timeout(500)
    assert asked == [], "no request for the row"
    shown = row_as_shown(row)
    preview = row.locator(".preview").inner_text()
    assert preview.endswith("…") and len(preview) == 90 and preview.startswith("Olá! Posso remarcar")
    page.reload()
    live(page)
    assert row_as_shown(row) == shown, "what the server renders"

    # Answered, the wait ends (the server's row); her next message starts a new one, from the frame again.
    conversation = in_thread(Conversation.objects.get, contact__phone=ana[1])
    in_thread(send_outbound_message, conversation=conversation, sender=member, content="Pode sim, às 15h.")
    expect(row.locator(".waiting")).to_have_count(0, timeout=10_000)
    expect(row.locator(".preview")).to_contain_text("Pode sim")
    page.wait_for_timeout(500)
    asked.clear()
    assert post_webhook(host, patient_writes(*ana, "Obrigada!", next_second())) == 200
    expect(row.locator(".preview")).to_have_text("Obrigada!", timeout=10_000)
    expect(row.locator(".waiting")).to_have_text("aguarda há menos de 1 min")
    page.wait_for_timeout(500)
    assert asked == [], "no request for the row"
    shown = row_as_shown(row)
    page.reload()
    live(page)
    assert row_as_shown(row) == shown, "what the server renders"
    expect(row.locator(".waiting")).to_have_text("aguarda há menos de 1 min")

    # A message stamped in the same second as the row's latest may or may not be the latest: asked for.
    at = next_second()
    assert post_webhook(host, patient_writes(*ana, "Até quinta", at)) == 200
    expect(row.locator(".preview")).to_have_text("Até quinta", timeout=10_000)
    unread = int(row.locator(".unread").inner_text())
    asked.clear()
    assert post_webhook(host, patient_writes(*ana, "Beijos", at)) == 200
    expect(row.locator(".unread")).to_have_text(str(unread + 1), timeout=10_000)
    assert len(asked) == 1, "the row asked for"
    expect(row.locator(".preview")).to_have_text("Beijos")  # the server's latest of the two
