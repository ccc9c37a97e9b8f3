"""WhatsApp both ways in the browser: staff quote a patient's message (*Responder*), the reply shows the quote
above it, and clicking the quote goes to the original; reactions, the patient's and the team's, show on the
message they react to, live on every screen."""

import re
import time

import pytest
from playwright.sync_api import expect

from conftest import whatsapp_payload
from conversations.models import Message
from e2e.conftest import in_thread, patient_writes, post_webhook, screenshot
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


def reaction_from(phone: str, to: str, emoji: str) -> dict:
    payload = whatsapp_payload("reaction")
    value = payload["entry"][0]["changes"][0]["value"]
    value["contacts"] = [{"profile": {"name": "Maria Souza"}, "wa_id": phone}]
    value["messages"][0].update(
        {"from": phone, "id": f"wamid.e2e-reaction-{time.monotonic_ns()}", "timestamp": str(int(time.time()))}
    )
    value["messages"][0]["reaction"] = {"message_id": to, "emoji": emoji}
    return payload


def test_reactions_show_on_the_message_they_react_to_live_both_ways(team, serve, worker, browser):  # noqa: F811
    env = server_env()
    host = serve(env)
    worker(env)
    julia = open_as(browser, host, team["julia"], f"/inbox/{team['maria']}/")
    bruno = open_as(browser, host, team["bruno"], f"/inbox/{team['maria']}/")
    assert post_webhook(host, patient_writes("Maria Souza", "5511987654321", "Vocês atendem sábado?")) == 200
    question = julia.locator(".timeline .message.inbound", has_text="Vocês atendem sábado?")
    expect(question).to_have_count(1, timeout=10_000)
    composer = julia.get_by_role("textbox", name="Mensagem")
    composer.fill("Sim, das 8h às 12h.")
    composer.press("Enter")
    answer = julia.locator(".timeline .message.outbound[data-message-id]", has_text="Sim, das 8h às 12h.")
    expect(answer.locator(".tick")).to_have_attribute("data-tick", "read", timeout=15_000)
    sent = in_thread(lambda: Message.objects.get(content="Sim, das 8h às 12h.").external_id)

    # The patient's 👍 lands on the answer, on both screens, and is not a message of its own.
    bubbles_before = julia.locator(".timeline .message").count()
    assert post_webhook(host, reaction_from("5511987654321", sent, "👍")) == 200
    expect(answer.locator('[data-reaction="patient"]')).to_have_text("👍", timeout=10_000)
    expect(
        bruno.locator(".timeline .message", has_text="Sim, das 8h às 12h.").locator('[data-reaction="patient"]')
    ).to_have_text("👍", timeout=10_000)
    expect(julia.locator(".timeline .message")).to_have_count(bubbles_before)

    # Júlia reacts to the question from the picker; Bruno sees it.
    question.locator(".react-menu summary").click()
    question.get_by_role("button", name="Reagir com 🙏").click()
    expect(question.locator('[data-reaction="staff"]')).to_have_text("🙏", timeout=10_000)
    expect(
        bruno.locator(".timeline .message.inbound", has_text="Vocês atendem sábado?").locator('[data-reaction="staff"]')
    ).to_have_text("🙏", timeout=10_000)
    screenshot(julia, "reactions")


def tap_from(phone: str, question: str, title: str) -> dict:
    payload = whatsapp_payload("interactive_button")
    value = payload["entry"][0]["changes"][0]["value"]
    value["contacts"] = [{"profile": {"name": "Maria Souza"}, "wa_id": phone}]
    message = value["messages"][0]
    message.update({"from": phone, "id": f"wamid.e2e-tap-{time.monotonic_ns()}", "timestamp": str(int(time.time()))})
    message["interactive"]["button_reply"] = {"id": "b1", "title": title}
    message["context"] = {"from": "15550783881", "id": question}
    return payload


def test_staff_ask_with_reply_buttons_and_the_patients_tap_answers_the_question(team, serve, worker, browser):  # noqa: F811
    env = server_env()
    host = serve(env)
    worker(env)
    julia = open_as(browser, host, team["julia"], f"/inbox/{team['maria']}/")
    julia.locator(".question-editor summary").click()
    julia.get_by_label("Opções de resposta").fill("Confirmar\nRemarcar\nCancelar")
    composer = julia.get_by_role("textbox", name="Mensagem")
    composer.fill("Confirma sua consulta amanhã às 14h?")
    composer.press("Enter")
    question = julia.locator(".timeline .message.outbound[data-message-id]", has_text="Confirma sua consulta")
    expect(question.locator(".question-options li")).to_have_text(["Confirmar", "Remarcar", "Cancelar"], timeout=10_000)
    expect(question.locator(".tick")).to_have_attribute("data-tick", "read", timeout=15_000)
    expect(julia.get_by_label("Opções de resposta")).to_have_value("")
    asked = in_thread(lambda: Message.objects.get(content="Confirma sua consulta amanhã às 14h?").external_id)
    assert post_webhook(host, tap_from("5511987654321", asked, "Confirmar")) == 200
    tap = julia.locator(".timeline .message.inbound", has_text="Confirmar").last
    expect(tap.locator(".quote")).to_contain_text("Confirma sua consulta amanhã às 14h?", timeout=10_000)
    screenshot(julia, "question-buttons")


def test_a_template_with_a_document_header_and_buttons_is_filled_previewed_and_sent(team, serve, worker, browser):  # noqa: F811
    from datetime import timedelta

    from django.utils import timezone

    env = server_env()
    host = serve(env)
    worker(env)
    in_thread(
        lambda: Message.objects.filter(conversation_id=team["maria"]).update(
            created_at=timezone.now() - timedelta(hours=30)
        )
    )
    julia = open_as(browser, host, team["julia"], f"/inbox/{team['maria']}/")
    julia.get_by_role("button", name="Enviar modelo aprovado").click()
    julia.get_by_label("Modelo aprovado").select_option("exame_pronto")
    julia.get_by_label("Documento do cabeçalho").set_input_files(
        files=[{"name": "laudo.pdf", "mimeType": "application/pdf", "buffer": b"%PDF-1.4\n" + b"0" * 64}]
    )
    julia.get_by_label("Final do link de “Ver no portal”", exact=False).fill("x7k2")
    preview = julia.locator("[data-template-preview]")
    expect(preview.locator(".preview-media")).to_have_text("📎 laudo.pdf")
    expect(preview.locator(".preview-body")).to_have_text("Olá, Maria. Seu exame está pronto: o laudo segue acima.")
    expect(preview.locator(".preview-button")).to_have_text(["Ver no portal", "Recebi"])
    screenshot(julia, "template-preview")
    julia.get_by_role("button", name="Enviar modelo", exact=True).click()
    sent = julia.locator(".timeline .message.outbound[data-message-id]", has_text="Seu exame está pronto")
    expect(sent.locator(".document")).to_contain_text("laudo.pdf", timeout=10_000)
    expect(sent.locator(".template-footer")).to_have_text("Dúvidas? Responda esta mensagem.")
    expect(sent.locator(".question-options li")).to_have_text(["Ver no portal", "Recebi"])
    expect(sent.locator(".tick")).to_have_attribute("data-tick", "read", timeout=15_000)


def test_a_voice_note_is_recorded_in_the_browser_and_sent_as_ogg_opus(team, serve, worker):  # noqa: F811
    """Chromium records Opus in WebM; the page moves it into OGG, as WhatsApp wants a voice note."""
    from playwright.sync_api import sync_playwright

    from e2e.conftest import CHROMIUM, CHROMIUM_ARGS, log_in

    env = server_env()
    host = serve(env)
    worker(env)
    fake_microphone = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS + fake_microphone)
        context = browser.new_context()
        context.grant_permissions(["microphone"], origin=f"http://{host}")
        julia = context.new_page()
        log_in(julia, host, team["julia"])
        julia.goto(f"http://{host}/inbox/{team['maria']}/")
        record = julia.get_by_role("button", name="Gravar")
        record.click()
        expect(julia.locator("[data-record]")).to_have_attribute("aria-pressed", "true")
        julia.wait_for_timeout(2_500)
        julia.locator("[data-record]").click()
        expect(julia.locator(".attachment-chip")).to_contain_text("Mensagem de voz · 0:0", timeout=10_000)
        julia.get_by_role("button", name="Enviar", exact=True).click()
        sent = julia.locator(".timeline .message.outbound[data-message-id]", has=julia.locator("audio"))
        expect(sent).to_have_count(1, timeout=15_000)
        expect(sent.locator(".voice-note")).to_contain_text("Mensagem de voz · 0:0")
        expect(sent.locator(".tick")).to_have_attribute("data-tick", "read", timeout=15_000)
        screenshot(julia, "voice-note")
        browser.close()
    stored = in_thread(lambda: Message.objects.get(message_type="audio", metadata__voice=True))
    with stored.attachments.get().file.open("rb") as file:
        content = file.read()
    assert content.startswith(b"OggS") and b"OpusHead" in content[:80]
    assert 1.5 <= stored.metadata["duration_seconds"] <= 4, stored.metadata
