"""The clinic manager in the browser: the admin sets the clinic's hours on *Horário de atendimento*, a patient
writing while it is closed gets one away message (the receptionist's open timeline shows it as *Resposta
automática*, delivered by the worker), waiting times tick in the list, and the reports draw their charts —
on a laptop and on a 390 px phone."""

import time

import pytest
from playwright.sync_api import expect

from conversations.actions.inbound import receive_inbound_message
from conversations.actions.messages import send_outbound_message
from conversations.models import Role
from e2e.conftest import in_thread, live, log_in, patient_writes, post_webhook, screenshot
from e2e.test_workspace import bubbles, open_as
from realtime.tests.test_scale_out import server_env

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]
PHONE = "5511987654321"
PHONE_SHORT = "+55 11 98765-4321"


@pytest.fixture
def people(real_passwords, clinic, member, make_member, whatsapp_channel):
    whatsapp_channel.simulated = True  # Meta's signed webhooks come in; replies go to the simulator
    whatsapp_channel.save(update_fields=["simulated"])
    admin = make_member(clinic, Role.ADMIN, first_name="Helena", last_name="Prado")
    return {"julia": real_passwords(member), "helena": real_passwords(admin), "member": member, "admin": admin}


def test_the_admin_closes_the_clinic_and_a_patient_gets_one_away_message_live(people, serve, worker, browser, clinic):
    # The patient wrote before, while the clinic sent no away message (its usual week, "Nunca").
    conversation = in_thread(receive_inbound_message, clinic=clinic, phone=PHONE, content="Oi").conversation
    env = server_env()
    host = serve(env)
    worker(env)
    helena = browser.new_context().new_page()
    log_in(helena, host, people["helena"])
    helena.get_by_role("link", name="Horário").click()
    expect(helena.get_by_role("heading", name="Horário de atendimento")).to_be_visible()
    for day in ("Segunda", "Terça", "Quarta", "Quinta", "Sexta"):
        helena.get_by_label(day, exact=True).fill("08:00–12:00, 13:30–18:00")
    helena.get_by_label("Sábado", exact=True).fill("08:00–12:00")
    helena.get_by_label("Datas (uma por linha)").fill("25/12/2026\n01/01/2027")
    helena.get_by_label("Sempre").check()
    helena.get_by_label("Mensagem", exact=True).fill("Olá! Estamos fora do horário. Respondemos a partir das 8h.")
    helena.get_by_role("button", name="Salvar horário").click()
    expect(helena.locator(".notices")).to_contain_text("Horário de atendimento salvo.")
    expect(helena.get_by_label("Segunda", exact=True)).to_have_value("08:00–12:00, 13:30–18:00")
    screenshot(helena, "business-hours")
    # A mistake is said next to its field, and nothing is saved.
    helena.get_by_label("Domingo", exact=True).fill("10:00–12:00, 11:00–13:00")
    helena.get_by_role("button", name="Salvar horário").click()
    expect(helena.locator("#day_sun-error")).to_contain_text("10:00–12:00 e 11:00–13:00 se sobrepõem.")

    # Now closed all week: Júlia has the patient's conversation open when the patient writes, twice.
    helena.goto(f"http://{host}/settings/hours/")
    for day in ("Segunda", "Terça", "Quarta", "Quinta", "Sexta", "Sábado"):
        helena.get_by_label(day, exact=True).fill("")
    helena.get_by_role("button", name="Salvar horário").click()
    expect(helena.locator(".now")).to_contain_text("Fechada agora")
    julia = open_as(browser, host, people["julia"], f"/inbox/{conversation.pk}/")
    expect(bubbles(julia, "Estamos fora do horário")).to_have_count(0)
    assert post_webhook(host, patient_writes("Maria Souza", PHONE, "Boa noite, vocês abrem amanhã?")) == 200
    away = bubbles(julia, "Estamos fora do horário")
    expect(away).to_have_count(1, timeout=10_000)
    expect(away).to_contain_text("Resposta automática")
    expect(away.locator(".tick")).to_have_attribute("data-tick", "read", timeout=15_000)  # through the worker
    assert post_webhook(host, patient_writes("Maria Souza", PHONE, "Alô?")) == 200
    expect(bubbles(julia, "Alô?")).to_have_count(1, timeout=10_000)
    time.sleep(1)  # a second away message would be on screen by now
    expect(away).to_have_count(1)
    screenshot(julia, "away-message")


def test_waiting_times_tick_in_the_list_and_an_answer_ends_the_wait(people, serve, browser, clinic):
    from datetime import timedelta

    from django.utils import timezone

    from conversations.actions.hours import set_business_hours
    from conversations.hours import DAYS

    in_thread(
        set_business_hours,
        clinic=clinic,
        actor=people["admin"],
        timezone_name="America/Sao_Paulo",
        week={day: [["00:00", "24:00"]] for day in DAYS},
        closed_dates=[],
        away_mode="off",
        away_message="",
        first_response_target_minutes=15,
    )
    waiting = in_thread(
        receive_inbound_message,
        clinic=clinic,
        phone=PHONE,
        contact_name="Maria Souza",
        content="Preciso de um atestado",
        happened_at=timezone.now() - timedelta(minutes=20),
    ).conversation
    in_thread(
        receive_inbound_message,
        clinic=clinic,
        phone="5511912345678",
        contact_name="João Lima",
        content="Qual o endereço?",
        happened_at=timezone.now() - timedelta(minutes=3),
    )
    host = serve(server_env())
    julia = browser.new_context().new_page()
    julia.clock.install()  # the page's clock, moved on below: the waits tick without the server
    log_in(julia, host, people["julia"])
    julia.goto(f"http://{host}/inbox/?status=awaiting")
    live(julia)
    rows = julia.locator(".conversation")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("Maria Souza")  # the longest wait first
    expect(rows.nth(0).locator(".waiting")).to_have_text("aguarda há 20 min")
    expect(rows.nth(0).locator(".waiting")).to_have_class("waiting late")  # past the 15-minute target
    expect(rows.nth(1).locator(".waiting")).to_have_text("aguarda há 3 min")
    expect(rows.nth(1).locator(".waiting")).to_have_class("waiting")
    screenshot(julia, "waiting-times")
    julia.clock.fast_forward("13:00")  # thirteen minutes later, open all day: 16 minutes, past the target
    expect(rows.nth(1).locator(".waiting")).to_have_text("aguarda há 16 min")
    expect(rows.nth(1).locator(".waiting")).to_have_class("waiting late")
    expect(rows.nth(0).locator(".waiting")).to_have_text("aguarda há 33 min")
    in_thread(send_outbound_message, conversation=waiting, sender=people["member"], content="Claro, já envio.")
    expect(rows).to_have_count(1, timeout=10_000)  # answered: it leaves "Aguardando resposta"
    expect(rows.nth(0)).to_contain_text("João Lima")


def test_the_reports_page_reads_at_a_glance_on_a_laptop_and_a_phone(people, serve, browser, clinic):
    from datetime import timedelta

    from django.utils import timezone

    from conversations.actions.conversations import set_conversation_status

    member = people["member"]
    now = timezone.now()
    for n in range(8):
        phone, asked_at = f"55119{n:08d}", now - timedelta(days=n // 2, minutes=9 + 7 * n)
        conversation = in_thread(
            receive_inbound_message,
            clinic=clinic,
            phone=phone,
            contact_name=f"Paciente {n}",
            content="Quero marcar consulta",
            happened_at=asked_at,
        ).conversation
        if n < 2:  # today's: staff answer
            in_thread(send_outbound_message, conversation=conversation, sender=member, content="Claro!")
        else:  # the assistant answered the earlier days' on its own
            in_thread(
                receive_inbound_message,
                clinic=clinic,
                phone=phone,
                content="Temos horário amanhã às 9h.",
                sender_type="ai",
                happened_at=asked_at + timedelta(minutes=1),
            )
        if n % 2 == 0:
            in_thread(set_conversation_status, conversation=conversation, status="resolved", actor=member)
    host = serve(server_env())
    helena = open_as(browser, host, people["helena"], "/inbox/", viewport={"width": 1280, "height": 900})
    helena.get_by_role("link", name="Relatórios").click()
    expect(helena.get_by_role("heading", name="Relatórios", exact=True)).to_be_visible()
    expect(helena.locator("svg.chart")).to_have_count(4)
    expect(helena.locator(".cards")).to_contain_text("conversas abertas")
    expect(helena.get_by_role("table").filter(has_text="Júlia Carvalho")).to_have_count(1)
    helena.screenshot(path=str(_shot("reports")), full_page=True)
    with helena.expect_download() as download:
        helena.get_by_role("link", name="Baixar CSV").click()
    text = open(download.value.path(), encoding="utf-8").read()
    assert text.startswith("attendance_id,conversation_id") and "Quero marcar" not in text
    phone = browser.new_context(viewport={"width": 390, "height": 844}).new_page()
    log_in(phone, host, people["helena"])
    phone.goto(f"http://{host}/reports/")
    expect(phone.locator("svg.chart")).to_have_count(4)
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways on a phone ({width}px)"
    phone.screenshot(path=str(_shot("reports-phone")), full_page=True)


def _shot(name: str):
    from e2e.conftest import SCREENSHOTS

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS / f"{name}.png"
