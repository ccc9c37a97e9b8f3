"""The inbox in a real browser (Debian's Chromium, driven by Playwright) against a real server process:
a patient's WhatsApp message appears in the open list without a reload."""

import json
import shutil
import time
import urllib.request

import pytest

from conftest import APP_SECRET, whatsapp_payload
from conversations.actions.inbound import receive_inbound_message
from conversations.webhooks.whatsapp import signature_of
from realtime.tests.test_scale_out import server_env

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]
CHROMIUM = "/usr/bin/chromium"
# As the machine's notes say: without the background-networking flags Chromium keeps dialling out.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def inbox_ready(settings, clinic, member, whatsapp_channel):
    """Everything in the database before the browser starts: Playwright's loop then owns this thread."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]  # what the server verifies
    member.set_password("senha-de-teste-123")
    member.save()
    type(member).objects.create_superuser("suporte", "suporte@example.com", "senha-de-teste-123")
    receive_inbound_message(clinic=clinic, phone="5511911110001", contact_name="Ana Souza", content="Bom dia")
    return member.username


@pytest.fixture
def browser(inbox_ready):
    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is needed (apt-get install chromium); .ci/run installs it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


def post_webhook(host: str, payload: dict) -> int:
    body = json.dumps(payload).encode()
    request = urllib.request.Request(
        f"http://{host}/webhooks/whatsapp/",
        data=body,
        headers={"Content-Type": "application/json", "X-Hub-Signature-256": signature_of(body, APP_SECRET)},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status


def log_in(page, host: str, username: str, path: str = "/accounts/login/") -> None:
    page.goto(f"http://{host}{path}")
    page.fill("#id_username", username)
    page.fill("#id_password", "senha-de-teste-123")
    page.click("[type=submit]")
    page.wait_for_load_state()


def patient_writes(name: str, phone: str, text: str, at: int) -> dict:
    """Meta's recorded text notification, from another patient and stamped at `at` (epoch seconds)."""
    payload = whatsapp_payload("text")
    value = payload["entry"][0]["changes"][0]["value"]
    value["contacts"] = [{"profile": {"name": name}, "wa_id": phone}]
    message = value["messages"][0]
    message.update({"from": phone, "id": f"wamid.e2e-{phone}-{at}", "timestamp": str(at), "text": {"body": text}})
    return payload


def test_a_new_whatsapp_message_appears_in_the_open_inbox(inbox_ready, serve, browser, tmp_path):
    host = serve(server_env())
    page = browser.new_page()
    log_in(page, host, inbox_ready)
    page.wait_for_selector('[data-stream-state="live"]', timeout=10_000)

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
    live = [name.split("\n")[0] for name in page.locator(".conversation .name").all_inner_texts()]
    assert live == ["Sheena Nelson", "Ana Souza", "Carlos Lima"]
    # Sheena's own message of an hour ago, delivered late: counted unread, but not shown as her latest.
    assert post_webhook(host, patient_writes("Sheena Nelson", "5511987654321", "Oi, uma hora atrás", now - 3600)) == 200
    page.wait_for_function("document.querySelector('.conversation .unread')?.textContent === '2'", timeout=10_000)
    assert "Tem em outra cor?" in row.inner_text() and "uma hora atrás" not in row.inner_text()
    page.screenshot(path=str(tmp_path / "inbox.png"), full_page=True)
    page.reload()
    page.wait_for_selector("text=Carlos Lima")
    assert page.locator(".conversation .name").all_inner_texts() == live, "the live order is the server's"


def test_a_contact_renamed_by_support_is_renamed_in_the_open_inbox(inbox_ready, serve, browser):
    host = serve(server_env())
    inbox = browser.new_page()
    log_in(inbox, host, inbox_ready)
    inbox.wait_for_selector('[data-stream-state="live"]', timeout=10_000)

    support = browser.new_context().new_page()  # another person, in the admin
    log_in(support, host, "suporte", "/admin/login/")
    support.goto(f"http://{host}/admin/conversations/contact/")
    support.click("text=Ana Souza")
    support.fill("#id_name", "Ana Souza Lima")
    support.click("input[name=_save]")
    support.wait_for_selector(".messagelist")

    inbox.locator(".conversation .name", has_text="Ana Souza Lima").wait_for(timeout=10_000)
