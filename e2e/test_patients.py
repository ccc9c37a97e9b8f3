"""A patient's record in the browser: staff correct it from the panel, and a clinic admin joins two records
of one patient while a colleague has the other one open — the colleague's screen moves to the joined
conversation by itself."""

import pytest
from playwright.sync_api import expect

from conversations.actions.inbound import receive_inbound_message
from conversations.models import Role
from e2e.conftest import live, log_in, screenshot
from e2e.test_workspace import bubbles, open_as
from realtime.tests.test_scale_out import server_env

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def records(real_passwords, clinic, member, make_member, simulated_number):
    """Maria twice: by phone (the clinic's records) and by WhatsApp user id (a username hid the phone)."""
    admin = make_member(clinic, Role.ADMIN, first_name="Ana", last_name="Admin")
    by_phone = receive_inbound_message(
        clinic=clinic, phone="5511987654321", contact_name="Maria Souza", content="Pelo telefone"
    )
    by_user_id = receive_inbound_message(
        clinic=clinic, whatsapp_user_id="BR.1A2B3C", profile_name="Mari", content="Pelo WhatsApp"
    )
    return {
        "julia": real_passwords(member),
        "ana": real_passwords(admin),
        "kept": by_phone.contact.pk,
        "kept_conversation": by_phone.conversation.pk,
        "other_conversation": by_user_id.conversation.pk,
    }


def test_an_admin_joins_two_records_and_a_colleagues_open_screen_moves_to_the_joined_conversation(
    records, serve, browser
):
    host = serve(server_env())
    julia = open_as(browser, host, records["julia"], f"/inbox/{records['other_conversation']}/")
    expect(bubbles(julia, "Pelo WhatsApp")).to_have_count(1)

    ana = browser.new_context().new_page()
    log_in(ana, host, records["ana"])
    ana.goto(f"http://{host}/inbox/{records['kept_conversation']}/")
    live(ana)
    ana.get_by_role("link", name="Unir com outro cadastro do mesmo paciente").click()
    ana.get_by_label("Buscar o outro cadastro (nome ou telefone)").fill("Mari")
    ana.get_by_role("button", name="Buscar").click()
    ana.get_by_role("link", name="Mari — sem telefone").click()
    expect(ana.locator(".merge-confirm")).to_contain_text("Unir Mari (sem telefone, 1 mensagem)")
    screenshot(ana, "merge-patients")
    ana.get_by_label("Entendo que não há como desfazer.").check()
    ana.get_by_role("button", name="Unir cadastros").click()
    expect(bubbles(ana, "Pelo WhatsApp")).to_have_count(1, timeout=10_000)
    expect(bubbles(ana, "Pelo telefone")).to_have_count(1)

    # Júlia had the other record's conversation open: she is moved to the joined one, with both messages.
    expect(julia).to_have_url(f"http://{host}/inbox/{records['kept_conversation']}/", timeout=10_000)
    expect(bubbles(julia, "Pelo telefone")).to_have_count(1, timeout=10_000)
    expect(bubbles(julia, "Pelo WhatsApp")).to_have_count(1)


def test_staff_correct_the_patients_record_from_the_panel_and_a_colleague_sees_it(records, serve, browser):
    host = serve(server_env())
    julia = open_as(browser, host, records["julia"], f"/inbox/{records['other_conversation']}/")
    ana = open_as(browser, host, records["ana"], f"/inbox/{records['other_conversation']}/")
    panel = julia.locator("#patient")
    panel.get_by_text("Corrigir cadastro").click()
    expect(panel).to_contain_text("No WhatsApp: Mari")
    panel.get_by_label("Nome").fill("Maria Aparecida")
    panel.get_by_label("Observações").fill("Prefere ser chamada de Cida")
    panel.get_by_role("button", name="Salvar").click()
    expect(julia.locator("#patient")).to_contain_text("Prefere ser chamada de Cida", timeout=10_000)
    expect(ana.locator("#patient")).to_contain_text("Maria Aparecida", timeout=10_000)
    expect(ana.locator("#patient")).to_contain_text("Prefere ser chamada de Cida")
    screenshot(julia, "patient-record")
