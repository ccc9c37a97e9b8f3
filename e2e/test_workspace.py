"""The staff workspace in real browsers against real server and worker processes: two receptionists of one
clinic work a conversation together, a patient writes, files go and open, the board moves cards, and the
pages survive a dropped socket and a server restart without a reload. Another clinic sees none of it."""

import base64
import re
import time
import zoneinfo
from datetime import datetime

import pytest
from playwright.sync_api import expect

from conversations.actions.inbound import receive_inbound_message
from e2e.conftest import in_thread, live, log_in, patient_writes, post_webhook, screenshot
from realtime.tests.test_scale_out import server_env

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]
# A 1×1 PNG: a real image the browser draws.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


@pytest.fixture
def team(real_passwords, clinic, member, make_member, outsider, whatsapp_channel):
    """Júlia and Bruno at the clinic, Maria's conversation with two messages, and a stranger elsewhere.

    The channel is simulated: replies go to the simulator, never to Meta.
    """
    whatsapp_channel.simulated = True
    whatsapp_channel.save(update_fields=["simulated"])
    bruno = make_member(clinic, first_name="Bruno", last_name="Lima")
    first = receive_inbound_message(clinic=clinic, phone="5511987654321", contact_name="Maria Souza", content="Oi")
    receive_inbound_message(clinic=clinic, phone="5511987654321", content="Tem horário amanhã?")
    receive_inbound_message(clinic=clinic, phone="5511922220002", contact_name="Carlos Lima", content="Bom dia")
    return {
        "julia": real_passwords(member),
        "bruno": real_passwords(bruno),
        "outsider": real_passwords(outsider),
        "maria": first.conversation.pk,
    }


def open_as(browser, host: str, username: str, path: str, **context):
    page = browser.new_context(**context).new_page()
    log_in(page, host, username)
    page.goto(f"http://{host}{path}")
    live(page)
    return page


def bubbles(page, text: str):
    return page.locator(".timeline .message", has_text=text)


def test_two_staff_work_one_conversation_together(team, serve, worker, browser):
    env = server_env()
    host = serve(env)
    worker(env)
    julia = open_as(browser, host, team["julia"], f"/inbox/{team['maria']}/")
    bruno = open_as(browser, host, team["bruno"], f"/inbox/{team['maria']}/")

    # Each sees the other in the conversation, and Bruno's typing.
    expect(julia.locator(".presence .viewers")).to_contain_text("Bruno Lima", timeout=10_000)
    expect(bruno.locator(".presence .viewers")).to_contain_text("Júlia", timeout=10_000)
    bruno.get_by_role("textbox", name="Mensagem").press_sequentially("Vou ver a agenda")
    expect(julia.locator(".typing-line")).to_contain_text("Bruno Lima está digitando", timeout=10_000)
    expect(julia.locator(".conversation", has_text="Maria Souza").locator(".typing")).to_contain_text("digitando")
    bruno.get_by_role("textbox", name="Mensagem").fill("")

    # Júlia's reply: once for her (confirmed in place, ticks moving on), once for Bruno, live.
    composer = julia.get_by_role("textbox", name="Mensagem")
    composer.fill("Bom dia, Maria! Temos às 14h.")
    composer.press("Enter")
    expect(bubbles(bruno, "Temos às 14h")).to_have_count(1, timeout=10_000)
    expect(bubbles(julia, "Temos às 14h").locator('.tick[data-tick="read"]')).to_have_count(1, timeout=15_000)
    expect(bubbles(julia, "Temos às 14h")).to_have_count(1)
    expect(bubbles(bruno, "Temos às 14h").locator('.tick[data-tick="read"]')).to_have_count(1, timeout=15_000)
    assert bubbles(bruno, "Temos às 14h").locator(".sender").inner_text() == "Júlia"
    assert bubbles(julia, "Temos às 14h").locator(".sender").inner_text() == "Você"
    expect(julia.locator(".conversation", has_text="Maria Souza").locator(".preview")).to_contain_text(
        "Você: Bom dia, Maria!"
    )
    expect(bruno.locator(".conversation", has_text="Maria Souza").locator(".preview")).to_contain_text(
        "Júlia: Bom dia, Maria!"
    )

    screenshot(julia, "conversation")

    # Bruno takes it and marks it pending; Júlia's header follows.
    bruno.get_by_role("button", name="Atribuir a mim").click()
    expect(julia.locator("[data-assignee-select] option:checked")).to_have_text("Bruno Lima", timeout=10_000)
    bruno.get_by_role("button", name="Pendente").click()
    expect(julia.locator("[data-status-label]")).to_have_text("Pendente", timeout=10_000)
    expect(julia.get_by_role("button", name="Pendente")).to_have_attribute("aria-pressed", "true")
    # Opened and focused, the conversation is read: no unread badge on either screen.
    expect(julia.locator(".conversation", has_text="Maria Souza").locator(".unread")).to_have_count(0)
    expect(bruno.locator(".conversation", has_text="Maria Souza").locator(".unread")).to_have_count(0)


def test_a_patients_message_appears_in_the_open_conversation_and_the_list(team, serve, browser, clinic):
    host = serve(server_env())
    julia = open_as(browser, host, team["julia"], f"/inbox/{team['maria']}/")
    now = int(time.time())
    assert post_webhook(host, patient_writes("Maria Souza", "5511987654321", "Pode ser às 14h?", now)) == 200
    expect(bubbles(julia, "Pode ser às 14h?")).to_have_count(1, timeout=10_000)
    row = julia.locator(".conversation", has_text="Maria Souza")
    local = datetime.fromtimestamp(now, zoneinfo.ZoneInfo(clinic.timezone))
    expect(row.locator("time")).to_have_text(f"{local:%H:%M}")
    expect(row.locator(".preview")).to_have_text("Pode ser às 14h?")

    # Another patient writes: a new row with its unread count; the open conversation is untouched.
    assert post_webhook(host, patient_writes("Renata Dias", "5521933330003", "Primeira consulta?", now)) == 200
    renata = julia.locator(".conversation", has_text="Renata Dias")
    expect(renata.locator(".unread")).to_have_text("1", timeout=10_000)
    expect(bubbles(julia, "Primeira consulta?")).to_have_count(0)
    assert julia.locator(".conversation .name").first.inner_text() == "Renata Dias", "newest activity first"
    # A message WhatsApp stamped two days ago shows the day, not the hour.
    days_ago = now - 2 * 86_400
    assert post_webhook(host, patient_writes("Otávio Reis", "5511944440004", "Mensagem antiga", days_ago)) == 200
    day = datetime.fromtimestamp(days_ago, zoneinfo.ZoneInfo(clinic.timezone))
    months = ("jan", "fev", "mar", "abr", "mai", "jun", "jul", "ago", "set", "out", "nov", "dez")
    expect(julia.locator(".conversation", has_text="Otávio Reis").locator("time")).to_have_text(
        f"{day.day} de {months[day.month - 1]}", timeout=10_000
    )
    screenshot(julia, "inbox")

    # Another filter: only the unassigned conversations; one assigned meanwhile leaves the list live.
    julia.goto(f"http://{host}/inbox/?tab=unassigned")
    live(julia)
    expect(julia.locator(".conversation", has_text="Renata Dias")).to_have_count(1)
    julia.locator(".conversation", has_text="Renata Dias").locator(".row-link").click()
    julia.get_by_role("button", name="Atribuir a mim").click()
    expect(julia.locator(".conversation", has_text="Renata Dias")).to_have_count(0, timeout=10_000)


def test_an_attachment_is_checked_uploaded_and_opened(team, serve, browser):
    host = serve(server_env())
    julia = open_as(browser, host, team["julia"], f"/inbox/{team['maria']}/")
    julia.set_input_files("#composer-file", files=[{"name": "pagina.html", "mimeType": "text/html", "buffer": b"<h1>"}])
    expect(julia.locator(".composer-error")).to_contain_text("não aceita", timeout=5_000)
    julia.set_input_files("#composer-file", files=[{"name": "exame.png", "mimeType": "image/png", "buffer": PNG}])
    expect(julia.locator(".attachment-chip")).to_contain_text("exame.png")
    julia.get_by_role("textbox", name="Mensagem").fill("Segue o pedido do exame")
    julia.get_by_role("button", name="Enviar", exact=True).click()
    image = bubbles(julia, "Segue o pedido do exame").locator("img")
    expect(image).to_have_count(1, timeout=10_000)
    source = image.get_attribute("src")
    assert source.startswith("/media/attachments/")
    opened = julia.request.get(f"http://{host}{source}")
    assert opened.status == 200 and opened.headers["content-type"] == "image/png"
    assert opened.headers["x-content-type-options"] == "nosniff" and opened.body() == PNG
    assert image.evaluate("img => img.naturalWidth") == 1, "the browser drew it"


def test_the_board_moves_cards_live_by_drag_and_by_keyboard(team, serve, browser):
    host = serve(server_env())
    julia = open_as(browser, host, team["julia"], "/board/")
    bruno = open_as(browser, host, team["bruno"], "/board/")
    card = julia.locator('.card-item:has-text("Maria Souza")')
    card.drag_to(julia.locator('.cards[data-drop-status="resolved"]'))
    expect(bruno.locator('.cards[data-drop-status="resolved"] .card-item', has_text="Maria Souza")).to_have_count(
        1, timeout=10_000
    )
    # The keyboard way: the card's status menu.
    bruno.locator('.card-item:has-text("Carlos Lima") [data-move-card]').select_option("pending")
    expect(julia.locator('.cards[data-drop-status="pending"] .card-item', has_text="Carlos Lima")).to_have_count(
        1, timeout=10_000
    )
    expect(julia.locator('.board-column[data-status="pending"] .count')).to_have_text("1")
    screenshot(julia, "board")


def test_a_dropped_socket_shows_connecting_then_everything_sent_meanwhile(team, serve, browser, clinic):
    host = serve(server_env())
    context = browser.new_context()
    sockets, allowed = [], {"on": True}

    def route(ws):
        if not allowed["on"]:
            ws.close(code=1006)
            return
        ws.connect_to_server()
        sockets.append(ws)

    context.route_web_socket(re.compile(r"/ws/"), route)
    page = context.new_page()
    log_in(page, host, team["julia"])
    page.goto(f"http://{host}/inbox/{team['maria']}/")
    live(page)
    navigations = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url) if frame == page.main_frame else None)

    allowed["on"] = False
    for ws in sockets:
        ws.close(code=1006)
    expect(page.locator(".connection-label")).to_have_text("Conectando…", timeout=5_000)
    for n in range(3):
        in_thread(receive_inbound_message, clinic=clinic, phone="5511987654321", content=f"Enquanto caiu {n}")
    allowed["on"] = True  # back on its own, by the backoff: no click
    live(page)
    for n in range(3):
        expect(bubbles(page, f"Enquanto caiu {n}")).to_have_count(1, timeout=10_000)
    assert not navigations, "recovered without a reload"


def test_a_server_restart_under_open_pages_recovers_without_a_reload(team, serve, browser, clinic):
    env = server_env()
    host = serve(env)
    page = open_as(browser, host, team["julia"], f"/inbox/{team['maria']}/")
    navigations = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url) if frame == page.main_frame else None)

    serve.stop(host)
    expect(page.locator(".connection")).not_to_have_attribute("data-state", "live", timeout=10_000)
    in_thread(receive_inbound_message, clinic=clinic, phone="5511987654321", content="Durante o reinício")
    serve(env, port=int(host.rsplit(":", 1)[1]))
    live(page, timeout=40_000)  # back on its own, by the backoff (1, 2, 4, 8 s …)
    expect(bubbles(page, "Durante o reinício")).to_have_count(1, timeout=10_000)
    assert post_webhook(host, patient_writes("Maria Souza", "5511987654321", "Depois do reinício")) == 200
    expect(bubbles(page, "Depois do reinício")).to_have_count(1, timeout=10_000)
    assert not navigations, "recovered without a reload"


def test_staff_of_another_clinic_get_a_404_and_see_nothing(team, serve, browser):
    host = serve(server_env())
    stranger = browser.new_context().new_page()
    log_in(stranger, host, team["outsider"])
    response = stranger.goto(f"http://{host}/inbox/{team['maria']}/")
    assert response.status == 404
    assert "Maria Souza" not in stranger.content() and "Tem horário" not in stranger.content()
    stranger.goto(f"http://{host}/inbox/")
    live(stranger)
    assert "Maria Souza" not in stranger.content()
    # While both are open, the clinic's news reaches its own staff and never the stranger's page.
    julia = open_as(browser, host, team["julia"], "/inbox/")
    assert post_webhook(host, patient_writes("Maria Souza", "5511987654321", "Só para a Aurora")) == 200
    expect(julia.locator(".conversation", has_text="Só para a Aurora")).to_have_count(1, timeout=10_000)
    stranger.wait_for_timeout(1000)  # a frame sent to it would have landed by now
    assert "Só para a Aurora" not in stranger.content() and "Maria Souza" not in stranger.content()
    stranger.goto(f"http://{host}/board/")
    assert "Maria Souza" not in stranger.content()


def test_the_keyboard_works_the_list_and_a_narrow_screen_shows_one_pane(team, serve, browser):
    host = serve(server_env())
    page = open_as(browser, host, team["julia"], "/inbox/")
    page.keyboard.press("Alt+j")
    expect(page.locator(".conversation-pane h2")).to_have_text("Carlos Lima", timeout=10_000)
    page.keyboard.press("Alt+j")
    expect(page.locator(".conversation-pane h2")).to_have_text("Maria Souza", timeout=10_000)
    assert page.url.endswith(f"/inbox/{team['maria']}/")
    page.keyboard.press("Alt+k")
    expect(page.locator(".conversation-pane h2")).to_have_text("Carlos Lima", timeout=10_000)
    page.go_back()
    expect(page.locator(".conversation-pane h2")).to_have_text("Maria Souza", timeout=10_000)
    page.locator("body").click()
    page.keyboard.press("Escape")
    expect(page.locator(".conversation-pane h2")).to_have_count(0, timeout=10_000)
    page.keyboard.press("/")
    expect(page.locator("#search")).to_be_focused()
    page.keyboard.press("Escape")
    page.locator("body").click()
    page.keyboard.press("?")
    expect(page.locator("#shortcuts-help")).to_be_visible()

    narrow = open_as(browser, host, team["julia"], f"/inbox/{team['maria']}/", viewport={"width": 480, "height": 800})
    expect(narrow.locator(".list-pane")).to_be_hidden()
    expect(narrow.locator(".conversation-pane")).to_be_visible()
    narrow.get_by_role("link", name="← Conversas").click()
    expect(narrow.locator(".list-pane")).to_be_visible(timeout=10_000)
    expect(narrow.locator(".conversation-pane")).to_be_hidden()


def test_an_internal_note_reaches_colleagues_live_and_never_the_patient(team, serve, worker, browser):
    from conversations.models import DeliveryAttempt, Message, Note

    env = server_env()
    host = serve(env)
    worker(env)
    julia = open_as(browser, host, team["julia"], f"/inbox/{team['maria']}/")
    bruno = open_as(browser, host, team["bruno"], f"/inbox/{team['maria']}/")
    messages_before = in_thread(Message.objects.count)

    julia.get_by_role("radio", name="Nota interna").check()
    expect(julia.get_by_role("button", name="Salvar nota")).to_be_visible()
    composer = julia.get_by_role("textbox", name="Mensagem")
    composer.fill("Paciente prefere manhã. @Bruno confirma o convênio?")
    composer.press("Enter")

    for page in (julia, bruno):
        note = page.locator(".timeline .note", has_text="Paciente prefere manhã")
        expect(note).to_have_count(1, timeout=10_000)
        expect(note.locator(".note-badge")).to_have_text("Nota interna")
        expect(page.locator(".timeline .message", has_text="Paciente prefere manhã")).to_have_count(0)
    expect(bruno.locator(".toast.mention")).to_contain_text("mencionou você", timeout=10_000)
    expect(julia.locator(".toast.mention")).to_have_count(0)
    # Not the list's last message, and not unread for anyone.
    expect(bruno.locator(".conversation", has_text="Maria Souza").locator(".preview")).not_to_contain_text("prefere")
    screenshot(bruno, "internal-note")

    # A message again once the mode is switched back; the note stayed with the staff.
    julia.get_by_role("radio", name="Mensagem").check()
    expect(julia.get_by_role("button", name="Enviar", exact=True)).to_be_visible()
    assert in_thread(Message.objects.count) == messages_before
    assert in_thread(lambda: Note.objects.get().mentions.get().first_name) == "Bruno"
    assert not in_thread(lambda: DeliveryAttempt.objects.filter(message__content__contains="prefere").exists())


def test_marked_unread_for_oneself_the_badge_returns_on_each_of_ones_screens_only(team, serve, browser):
    host = serve(server_env())
    julia = open_as(browser, host, team["julia"], f"/inbox/{team['maria']}/")
    julia_list = julia.context.new_page()  # her second tab, on the list
    julia_list.goto(f"http://{host}/inbox/")
    live(julia_list)
    bruno = open_as(browser, host, team["bruno"], f"/inbox/{team['maria']}/")

    def badge(page):
        return page.locator(".conversation", has_text="Maria Souza").locator(".unread")

    for page in (julia, julia_list, bruno):
        expect(badge(page)).to_have_count(0, timeout=10_000)

    julia.get_by_role("button", name="Marcar como não lida").click()
    expect(julia).to_have_url(re.compile(r"/inbox/$"), timeout=10_000)
    for page in (julia, julia_list):
        expect(badge(page)).to_have_text("1", timeout=10_000)
    expect(badge(bruno)).to_have_count(0)


def test_staff_take_a_conversation_from_the_assistant_whose_answers_become_suggestions(team, serve, browser):
    import json
    import urllib.request

    from conversations.actions.integrations import create_integration_token
    from conversations.models import Clinic, Message

    host = serve(server_env())
    clinic = in_thread(lambda: Clinic.objects.get(slug="aurora"))
    token = in_thread(create_integration_token, clinic=clinic, name="n8n")[1]
    julia = open_as(browser, host, team["julia"], f"/inbox/{team['maria']}/")
    bruno = open_as(browser, host, team["bruno"], f"/inbox/{team['maria']}/")
    expect(julia.locator("[data-answered-by-label]")).to_have_text("Assistente responde")

    julia.get_by_role("button", name="Assumir").click()
    expect(bruno.locator("[data-answered-by-label]")).to_have_text("Equipe responde", timeout=10_000)
    expect(bruno.get_by_role("button", name="Devolver ao assistente")).to_be_visible()
    expect(bruno.get_by_role("button", name="Assumir")).to_be_hidden()

    request = urllib.request.Request(
        f"http://{host}/webhooks/n8n/aurora/",
        data=json.dumps({"phone": "5511987654321", "content": "Temos horário às 10h.", "sender_type": "ai"}).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 202 and json.load(answer)["sent"] is False
    for page in (julia, bruno):
        suggestion = page.locator(".timeline .note.suggestion", has_text="Temos horário às 10h.")
        expect(suggestion).to_have_count(1, timeout=10_000)
        expect(suggestion.locator(".note-badge")).to_have_text("Sugestão do assistente")
    assert not in_thread(lambda: Message.objects.filter(content="Temos horário às 10h.").exists())
    bruno.get_by_role("button", name="Usar sugestão").click()
    expect(bruno.get_by_role("textbox", name="Mensagem")).to_have_value("Temos horário às 10h.")
    screenshot(bruno, "assistant-suggestion")

    bruno.get_by_role("button", name="Devolver ao assistente").click()
    expect(julia.locator("[data-answered-by-label]")).to_have_text("Assistente responde", timeout=10_000)
    expect(julia.get_by_role("button", name="Assumir")).to_be_visible()


def test_after_the_24_hour_window_free_text_is_stopped_and_an_approved_template_goes(team, serve, worker, browser):
    from datetime import timedelta

    from django.utils import timezone

    from conversations.models import Message

    env = server_env()
    host = serve(env)
    worker(env)
    in_thread(
        lambda: Message.objects.filter(conversation_id=team["maria"]).update(
            created_at=timezone.now() - timedelta(hours=30)
        )
    )
    julia = open_as(browser, host, team["julia"], f"/inbox/{team['maria']}/")
    bruno = open_as(browser, host, team["bruno"], f"/inbox/{team['maria']}/")
    expect(julia.locator("[data-reply-window]")).to_contain_text("fechou")

    composer = julia.get_by_role("textbox", name="Mensagem")
    composer.fill("Bom dia, Maria!")
    composer.press("Enter")
    expect(julia.locator(".composer-error")).to_contain_text("janela de 24 horas")
    expect(julia.locator("[data-template-panel]")).to_be_visible()
    assert not in_thread(lambda: Message.objects.filter(content="Bom dia, Maria!").exists())

    julia.get_by_label("Modelo aprovado").select_option("lembrete_consulta")
    expect(julia.locator("[data-variable='1']")).to_have_value("Maria")  # the patient's first name
    julia.locator("[data-variable='2']").fill("amanhã")
    julia.get_by_role("button", name="Enviar modelo", exact=True).click()
    expect(julia.locator(".composer-error")).to_contain_text("{{3}}")  # one left blank: stopped, named
    julia.locator("[data-variable='3']").fill("14h")
    expect(julia.locator("[data-template-preview]")).to_have_text(
        "Olá, Maria! Lembramos da sua consulta em amanhã às 14h. Responda SIM para confirmar."
    )
    screenshot(julia, "template")
    julia.get_by_role("button", name="Enviar modelo", exact=True).click()
    for page in (julia, bruno):
        sent = page.locator(".timeline .message.type-template", has_text="Lembramos da sua consulta em amanhã")
        expect(sent).to_have_count(1, timeout=10_000)
    expect(bruno.locator(".timeline .message.type-template").locator('.tick[data-tick="read"]')).to_have_count(
        1, timeout=15_000
    )

    # The patient writes: the window opens again on every screen, live.
    post_webhook(host, patient_writes("Maria Souza", "5511987654321", "Pode ser às 15h?"))
    expect(bruno.locator("[data-reply-window]")).to_contain_text("para responder livremente", timeout=10_000)


def test_an_admins_quick_replies_are_picked_with_slash_and_filled_from_the_conversation(
    team, serve, browser, make_member, clinic, real_passwords
):
    from conversations.models import Message, Role

    ana = in_thread(lambda: real_passwords(make_member(clinic, Role.ADMIN, first_name="Ana", last_name="Diretora")))
    host = serve(server_env())
    admin = browser.new_context().new_page()
    log_in(admin, host, ana)
    admin.goto(f"http://{host}/quick-replies/")
    for code, text in (
        ("endereco", "Olá, {{primeiro_nome}}! A {{clinica}} fica na Rua das Flores, 100."),
        ("retorno", "{{primeiro_nome}}, seu retorno é em {{data}}."),
    ):
        form = admin.get_by_role("form", name="Nova resposta rápida")
        form.get_by_label("Código").fill(code)
        form.get_by_label("Texto").fill(text)
        form.get_by_role("button", name="Adicionar").click()
        expect(admin.locator(".notices")).to_contain_text(f"/{code} salva")
    screenshot(admin, "quick-replies")

    julia = open_as(browser, host, team["julia"], f"/inbox/{team['maria']}/")
    composer = julia.get_by_role("textbox", name="Mensagem")
    composer.press_sequentially("/end")
    picker = julia.get_by_role("listbox", name="Respostas rápidas")
    expect(picker.get_by_role("option")).to_have_count(1)
    expect(picker.get_by_role("option")).to_contain_text("/endereco")
    composer.press("Enter")
    expect(composer).to_have_value("Olá, Maria! A Clínica Aurora fica na Rua das Flores, 100.")
    composer.press("Enter")
    expect(bubbles(julia, "A Clínica Aurora fica na Rua das Flores")).to_have_count(1, timeout=10_000)

    composer.press_sequentially("/ret")
    composer.press("Enter")
    expect(composer).to_have_value("Maria, seu retorno é em {{data}}.")
    expect(julia.locator(".composer-error")).to_contain_text("{{data}}")
    composer.press("Enter")
    expect(julia.locator(".composer-error")).to_contain_text("variáveis sem valor")
    assert not in_thread(lambda: Message.objects.filter(content__contains="seu retorno").exists())


def test_the_quick_reply_picker_filters_by_what_is_typed_when_the_replies_arrive_late(
    team, serve, browser, make_member, clinic
):
    """The clinic's replies are read when "/" is first typed; if the answer comes only after more was typed,
    the picker shows what matches the text as it is then, and a later keystroke does not read them again
    (each read answering in its own order used to leave the picker showing an earlier filter)."""
    from conversations.actions.replies import create_quick_reply
    from conversations.models import Role

    admin = in_thread(lambda: make_member(clinic, Role.ADMIN, first_name="Ana"))
    for code in ("endereco", "exames"):
        in_thread(create_quick_reply, clinic=clinic, actor=admin, shortcut=code, content=f"Texto de {code}.")
    host = serve(server_env())
    julia = open_as(browser, host, team["julia"], f"/inbox/{team['maria']}/")
    held, reads = [], []

    def hold_the_first(route):
        reads.append(route.request.url)
        if not held:
            held.append(route)  # answered below, once the rest is typed
        else:
            route.continue_()

    julia.route("**/api/quick-replies/", hold_the_first)
    composer = julia.get_by_role("textbox", name="Mensagem")
    composer.press_sequentially("/end")
    expect(composer).to_have_value("/end")
    julia.wait_for_timeout(300)  # any other read has been answered by now
    held[0].continue_()
    picker = julia.get_by_role("listbox", name="Respostas rápidas")
    expect(picker.get_by_role("option")).to_have_count(1)
    julia.wait_for_timeout(300)  # and stays so: no earlier filter lands after it
    expect(picker.get_by_role("option")).to_have_count(1)
    expect(picker.get_by_role("option")).to_contain_text("/endereco")
    assert len(reads) == 1, reads
    composer.press("Enter")
    expect(composer).to_have_value("Texto de endereco.")
    composer.press("Enter")
    expect(bubbles(julia, "Texto de endereco.")).to_have_count(1, timeout=10_000)


def test_labels_and_snooze_move_the_list_live_for_colleagues(team, serve, browser):
    host = serve(server_env())
    julia = open_as(browser, host, team["julia"], f"/inbox/{team['maria']}/")
    bruno = open_as(browser, host, team["bruno"], "/inbox/")
    maria_row = bruno.locator(".conversation", has_text="Maria Souza")
    expect(maria_row).to_have_count(1)

    julia.locator(".label-editor summary").click()
    julia.get_by_label("Nova etiqueta").fill("Convênio")
    julia.get_by_role("button", name="Criar").click()
    expect(julia.locator("[data-head-labels] .label-chip")).to_have_text(["Convênio"], timeout=10_000)
    expect(maria_row.locator(".label-chip")).to_have_text("Convênio", timeout=10_000)
    screenshot(julia, "labels")

    julia.locator(".snooze-menu summary").click()
    julia.get_by_label("Adiar até").fill("2099-12-31T08:00")
    julia.locator("[data-snooze]").click()
    expect(julia.locator("[data-snoozed-label]")).to_contain_text("Adiada até", timeout=10_000)
    expect(maria_row).to_have_count(0, timeout=10_000)  # out of Bruno's open list, live

    post_webhook(host, patient_writes("Maria Souza", "5511987654321", "Ainda preciso do horário"))
    expect(maria_row).to_have_count(1, timeout=10_000)  # the patient wrote: back at once
    expect(julia.locator("[data-snoozed-label]")).to_be_hidden(timeout=10_000)
    expect(maria_row.locator(".snoozed")).to_have_count(0)


def test_search_finds_stemmed_words_and_opens_the_conversation_at_the_message(team, serve, browser, clinic):
    from conversations.models import Message

    found = in_thread(
        receive_inbound_message, clinic=clinic, phone="5511987654321", content="Os exâmes de sangue ficaram prontos?"
    ).message
    for n in range(55):  # the result sits above the conversation's first window
        in_thread(receive_inbound_message, clinic=clinic, phone="5511987654321", content=f"mensagem {n}")
    host = serve(server_env())
    julia = open_as(browser, host, team["julia"], "/inbox/")
    julia.get_by_role("link", name="Busca", exact=True).click()
    julia.get_by_role("searchbox", name="Palavras").fill("exame")
    julia.get_by_role("button", name="Buscar").click()
    result = julia.locator(".hits a", has_text="Maria Souza")
    expect(result).to_have_count(1)
    expect(result.locator("mark")).to_have_text("exâmes")
    screenshot(julia, "search")
    result.click()
    live(julia)
    target = julia.locator(f"#m{found.pk}")
    expect(target).to_have_class(re.compile(r"\bfound\b"))
    expect(target).to_be_in_viewport()
    assert in_thread(lambda: Message.objects.filter(conversation_id=team["maria"]).count()) > 55

    stranger = browser.new_context().new_page()
    log_in(stranger, host, team["outsider"])
    stranger.goto(f"http://{host}/search/?q=exame")
    expect(stranger.locator(".hits li")).to_have_count(0)
    expect(stranger.locator("body")).not_to_contain_text("Maria Souza")
