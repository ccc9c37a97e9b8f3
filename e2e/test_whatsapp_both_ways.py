"""WhatsApp both ways in the browser: staff quote a patient's message (*Responder*), the reply shows the quote
above it, and clicking the quote goes to the original."""

import re

import pytest
from playwright.sync_api import expect

from e2e.conftest import patient_writes, post_webhook, screenshot
from e2e.test_workspace import open_as, team  # noqa: F401 (the fixture)
from realtime.tests.test_scale_out import server_env

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]


def test_staff_quote_a_patients_message_and_the_quote_leads_back_to_it(team, serve, worker, browser):  # noqa: F811
    env = server_env()
    host = serve(env)
    worker(env)
    julia = open_as(browser, host, team["julia"], f"/inbox/{team['maria']}/")
    assert post_webhook(host, patient_writes("Maria Souza", "5511987654321", "Posso levar meu filho junto?")) == 200
    question = julia.locator(".timeline .message.inbound", has_text="Posso levar meu filho junto?")
    expect(question).to_have_count(1, timeout=10_000)
    question.get_by_role("button", name="Responder").click()
    expect(julia.locator("[data-replying]")).to_contain_text("Maria Souza: Posso levar meu filho junto?")
    composer = julia.get_by_role("textbox", name="Mensagem")
    expect(composer).to_be_focused()
    composer.fill("Pode sim, sem problema!")
    composer.press("Enter")
    reply = julia.locator(".timeline .message[data-message-id]", has_text="Pode sim, sem problema!")
    expect(reply.locator(".quote")).to_contain_text("Posso levar meu filho junto?", timeout=10_000)
    expect(julia.locator("[data-replying]")).to_be_hidden()
    screenshot(julia, "reply-in-context")
    julia.locator(".timeline").evaluate("(timeline) => { timeline.scrollTop = timeline.scrollHeight; }")
    reply.locator(".quote a").click()
    expect(question).to_have_class(re.compile(r"\bfound\b"))
    expect(question).to_be_in_viewport()
