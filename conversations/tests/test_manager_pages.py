"""The manager's pages through the browser's own requests: *Horário de atendimento* (read by every member,
changed by clinic admins), the reports with their charts and tables, and the inbox's waiting times."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from conversations import clinic_hours, hours
from conversations.actions.conversations import set_conversation_status
from conversations.actions.inbound import receive_inbound_message
from conversations.actions.messages import send_outbound_message
from conversations.models import AuditEvent, BusinessHours, Conversation, Role
from conversations.tests.test_business_hours import CLOSED_WEEK, OPEN_WEEK, set_hours

pytestmark = pytest.mark.usefixtures("simulated_number")


@pytest.fixture
def admin(clinic, make_member):
    return make_member(clinic, Role.ADMIN, first_name="Helena", last_name="Prado")


def form(**changes) -> dict:
    fields = {f"day_{day}": "" for day in hours.DAYS} | {
        "day_mon": "08:00–12:00, 13:30–18:00",
        "day_tue": "8h às 12h; 13h30 às 18h",
        "closed_dates": "25/12/2026\n2027-01-01",
        "timezone": "America/Sao_Paulo",
        "away_mode": "always",
        "away_message": "Estamos fora do horário; respondemos às 8h.",
        "first_response_target_minutes": "20",
    }
    return fields | changes


# --- Horário de atendimento -------------------------------------------------------------------------------


def test_a_clinic_admin_sets_the_week_with_a_lunch_break_holidays_and_the_away_message(client, clinic, admin):
    client.force_login(admin)
    page = client.get("/settings/hours/")
    assert page.status_code == 200 and "Horário de atendimento" in page.text
    response = client.post("/settings/hours/", form(), follow=True)
    assert response.status_code == 200 and "Horário de atendimento salvo." in response.text
    document = clinic_hours.document(clinic)
    assert document["week"]["mon"] == document["week"]["tue"] == [["08:00", "12:00"], ["13:30", "18:00"]]
    assert document["week"]["sun"] == [] and document["closed_dates"] == ["2026-12-25", "2027-01-01"]
    assert (document["away_mode"], document["first_response_target_minutes"]) == ("always", 20)
    assert AuditEvent.objects.filter(action="clinic.hours_changed", actor=admin).count() == 1
    assert 'value="08:00–12:00, 13:30–18:00"' in response.text and "25/12/2026" in response.text


@pytest.mark.parametrize(
    "change,message",
    [
        ({"day_wed": "08:00–12:00, 11:00–13:00"}, "se sobrepõem"),
        ({"day_thu": "manhã"}, "Não entendi “manhã”"),
        ({"day_fri": "18:00–08:00"}, "termina antes de começar"),
        ({"closed_dates": "31/02/2026"}, "não é uma data"),
        ({"first_response_target_minutes": "0"}, "de 1 a"),
        ({"first_response_target_minutes": "9" * 5000}, "de 1 a"),
        ({"away_message": ""}, "Escreva a mensagem"),
        ({"timezone": "Marte/Olympus"}, "fuso horário"),
    ],
)
def test_a_mistake_in_the_form_is_said_in_portuguese_next_to_its_field_and_saves_nothing(
    client, clinic, admin, change, message
):
    client.force_login(admin)
    response = client.post("/settings/hours/", form(**change))
    assert response.status_code == 400 and message in response.text and 'aria-invalid="true"' in response.text
    assert not BusinessHours.objects.exists()
    for field, value in change.items():
        if value and field != "timezone":  # a zone not in the list cannot be shown chosen
            assert value.split("\n")[0] in response.text, "what was typed stays in the form"


def test_staff_read_the_hours_but_only_admins_change_them(client, clinic, member):
    client.force_login(member)
    page = client.get("/settings/hours/")
    assert page.status_code == 200 and "Só os administradores da clínica alteram o horário." in page.text
    assert "<fieldset disabled>" in page.text
    assert client.post("/settings/hours/", form()).status_code == 403 and not BusinessHours.objects.exists()


def test_another_clinics_admin_sees_and_changes_only_their_own_hours(client, clinic, admin, outsider, other_clinic):
    set_hours(clinic, admin, CLOSED_WEEK, away_mode="off")
    client.force_login(outsider)
    page = client.get("/settings/hours/")
    assert "Fechada agora" not in page.text or "nenhum horário aberto" not in page.text
    client.post("/settings/hours/", form(day_mon="07:00–19:00"))
    assert clinic_hours.document(other_clinic)["week"]["mon"] == [["07:00", "19:00"]]
    assert clinic_hours.document(clinic)["week"]["mon"] == [], "clinic A's hours are untouched"


# --- Reports ----------------------------------------------------------------------------------------------


@pytest.fixture
def activity(clinic, admin, member):
    set_hours(clinic, admin, OPEN_WEEK, away_mode="off")
    conversation = receive_inbound_message(
        clinic=clinic, phone="5511987654321", content="Queria marcar", happened_at=timezone.now() - timedelta(minutes=7)
    ).conversation
    send_outbound_message(conversation=conversation, sender=member, content="Claro, para quando?")
    set_conversation_status(conversation=conversation, status="resolved", actor=member)
    return conversation


def test_the_reports_page_draws_each_figure_and_tables_it(client, clinic, admin, activity):
    client.force_login(admin)
    page = client.get("/reports/").text
    assert page.count('<svg class="chart') == 4, "conversations, messages, assistant vs staff, heatmap"
    assert '<title id="chart-conversas-abertas-e-resolvidas-por-dia">' in page
    assert "7 min" in page, "the median first response"
    assert "Júlia Carvalho" in page and "Queria marcar" not in page and "5511987654321" not in page
    assert page.count("<table") == 6 and "<caption" in page
    main = page.split("<main", 1)[1].split("</main>")[0]
    assert "format=csv" in page and "<script" not in main, "no script draws them"


def test_the_reports_page_takes_a_range_and_says_when_it_is_wrong(client, clinic, admin, activity):
    client.force_login(admin)
    today = timezone.now().astimezone(clinic.tzinfo).date()
    page = client.get("/reports/", {"from": str(today - timedelta(days=6)), "to": str(today)}).text
    assert len(re.findall(r"<th scope=\"row\">\d\d/\d\d</th><td>\d+</td><td>\d+</td>", page)) == 14
    wrong = client.get("/reports/", {"from": "2026-12-10", "to": "2026-12-01"}, follow=True).text
    assert "Período inválido" in wrong
    for far in ("0001-01-01", "9999-12-31"):
        page = client.get("/reports/", {"from": far, "to": far})
        assert page.status_code == 200 and "Período inválido" in page.text


def test_only_admins_see_reports_and_each_only_their_clinics(client, clinic, member, outsider, activity):
    client.force_login(member)
    assert client.get("/reports/").status_code == 403
    assert "Relatórios" not in client.get("/inbox/").text, "no link to a page they cannot open"
    client.force_login(outsider)
    page = client.get("/reports/").text
    assert "Júlia Carvalho" not in page and "7 min" not in page


# --- Waiting times in the inbox -------------------------------------------------------------------------


def test_a_waiting_patient_shows_for_how_long_in_business_hours_and_is_marked_past_the_target(
    client, clinic, admin, member
):
    set_hours(clinic, admin, OPEN_WEEK, away_mode="off", first_response_target_minutes=15)
    receive_inbound_message(
        clinic=clinic, phone="5511911110001", content="Oi", happened_at=timezone.now() - timedelta(minutes=12)
    )
    receive_inbound_message(
        clinic=clinic, phone="5511922220002", content="Olá", happened_at=timezone.now() - timedelta(minutes=40)
    )
    answered = receive_inbound_message(clinic=clinic, phone="5511933330003", content="Bom dia").conversation
    send_outbound_message(conversation=answered, sender=member, content="Bom dia!")
    client.force_login(member)
    page = client.get("/inbox/").text
    assert "aguarda há 12 min" in page and "aguarda há 40 min" in page
    assert page.count('class="waiting late"') == 1, "only the 40-minute wait is past the 15-minute target"
    assert page.count('class="waiting') == 2, "an answered patient waits for nothing"


def test_closed_hours_do_not_count_as_waiting(client, clinic, admin, member):
    set_hours(clinic, admin, CLOSED_WEEK, away_mode="off")
    receive_inbound_message(
        clinic=clinic, phone="5511911110001", content="Oi", happened_at=timezone.now() - timedelta(hours=3)
    )
    client.force_login(member)
    assert "aguarda há menos de 1 min" in client.get("/inbox/").text


def test_the_awaiting_filter_lists_the_longest_wait_first_and_only_those_waiting(client, clinic, admin, member):
    set_hours(clinic, admin, OPEN_WEEK, away_mode="off")
    now = timezone.now()
    for phone, minutes in (("5511911110001", 5), ("5511922220002", 50), ("5511933330003", 20)):
        receive_inbound_message(clinic=clinic, phone=phone, content="Oi", happened_at=now - timedelta(minutes=minutes))
    answered = Conversation.objects.get(contact__phone="5511933330003")
    send_outbound_message(conversation=answered, sender=member, content="Pronto!")
    receive_inbound_message(clinic=clinic, phone="5511944440004", content="Resolvida", happened_at=now)
    set_conversation_status(
        conversation=Conversation.objects.get(contact__phone="5511944440004"), status="resolved", actor=member
    )
    client.force_login(member)
    page = client.get("/inbox/", {"status": "awaiting"}).text
    assert "Aguardando resposta" in page
    phones = re.findall(r'class="phone">([^<]+)<', page)
    assert phones == ["+55 11 92222-0002", "+55 11 91111-0001"], "longest first; none answered or resolved"
    row = client.get("/inbox/rows/", {"status": "awaiting", "id": answered.pk}, HTTP_X_FRAGMENT="row")
    assert row.status_code == 204, "an answered conversation leaves the filter"


def test_the_scripts_get_the_clinics_open_intervals_to_keep_waiting_times_ticking(client, clinic, admin, member):
    set_hours(clinic, admin, OPEN_WEEK, away_mode="off", first_response_target_minutes=25)
    client.force_login(member)
    clock = client.get("/inbox/hours/", HTTP_X_FRAGMENT="hours").json()
    assert clock["target_seconds"] == 25 * 60 and len(clock["intervals"]) == 1
    start, end = clock["intervals"][0]
    assert end - start >= 8 * 86400 * 1000
    set_hours(clinic, admin, CLOSED_WEEK, away_mode="off")
    assert client.get("/inbox/hours/", HTTP_X_FRAGMENT="hours").json()["intervals"] == []


def test_another_clinics_hours_never_reach_the_scripts(client, clinic, admin, outsider):
    set_hours(clinic, admin, OPEN_WEEK, away_mode="off", first_response_target_minutes=42)
    client.force_login(outsider)
    clock = client.get("/inbox/hours/", HTTP_X_FRAGMENT="hours").json()
    assert clock["target_seconds"] == 15 * 60 and len(clock["intervals"]) > 1, "their own usual week"
