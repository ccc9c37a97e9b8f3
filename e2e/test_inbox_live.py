"""The inbox list in a real browser (Debian's Chromium, driven by Playwright) against a real server
process: a patient's WhatsApp message appears in the open list without a reload, in the server's order."""

import time

import pytest
from playwright.sync_api import expect

from conversations.actions.inbound import receive_inbound_message
from e2e.conftest import live, log_in, patient_writes, post_webhook
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
