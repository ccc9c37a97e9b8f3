"""Business hours (DESIGN §12): the rule, the API that sets it, `open` for staff and for n8n, and the away
message a patient gets while the clinic is closed — through the real webhook, the real worker and Meta's
HTTP mocked at the boundary."""

import json
from datetime import UTC, datetime, timedelta

import pytest
import respx
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from conftest import APP_SECRET
from conversations import clinic_hours, hours
from conversations.actions import inbound_fast
from conversations.actions.conversations import set_answered_by
from conversations.actions.hours import set_business_hours
from conversations.actions.messages import send_outbound_message
from conversations.management.commands.simulate_patients import notification
from conversations.models import AuditEvent, BusinessHours, Clinic, Conversation, Message, Role
from conversations.tests.test_delivery import accepted, run_worker
from conversations.webhooks.whatsapp import receive_notification, signature_of
from realtime.models import Event

NUMBER = "106540352242922"
CLOSED_WEEK = {day: [] for day in hours.DAYS}
OPEN_WEEK = {day: [["00:00", "24:00"]] for day in hours.DAYS}
SAO_PAULO = "America/Sao_Paulo"


@pytest.fixture
def admin(clinic, make_member):
    return make_member(clinic, Role.ADMIN, first_name="Helena", last_name="Prado")


def set_hours(clinic, admin, week=None, **fields):
    stored = {
        "timezone_name": SAO_PAULO,
        "week": week if week is not None else OPEN_WEEK,
        "closed_dates": [],
        "away_mode": "always",
        "away_message": "Estamos fechados agora; respondemos assim que abrirmos.",
        "first_response_target_minutes": 15,
    } | fields
    return set_business_hours(clinic=clinic, actor=admin, **stored)


def patient_writes(text: str, n: int, *, phone: str = "5511987654321", at: datetime | None = None) -> dict:
    payload = notification(NUMBER, text, n, phone=phone, name="Maria Souza")
    if at is not None:
        payload["entry"][0]["changes"][0]["value"]["messages"][0]["timestamp"] = str(int(at.timestamp()))
    body = json.dumps(payload).encode()
    status, answer = receive_notification(body, signature_of(body, APP_SECRET))
    assert status == 200, answer
    return answer


def away_messages(clinic):
    return Message.objects.filter(clinic=clinic, metadata__auto_reply="away")


# --- The rule -------------------------------------------------------------------------------------------


def rule(week, closed=()):
    return hours.hours_of(SAO_PAULO, week, list(closed))


def local(*args) -> datetime:
    return datetime(*args, tzinfo=hours.zoneinfo.ZoneInfo(SAO_PAULO))


def test_a_day_with_a_lunch_break_is_open_in_each_interval_and_closed_between():
    week = {"mon": [["08:00", "12:00"], ["13:30", "18:00"]]}
    monday = rule(week)
    assert hours.is_open(monday, local(2026, 12, 7, 8, 0))  # a Monday
    assert not hours.is_open(monday, local(2026, 12, 7, 12, 0)), "an interval ends before its last minute"
    assert not hours.is_open(monday, local(2026, 12, 7, 13, 0))
    assert hours.is_open(monday, local(2026, 12, 7, 17, 59))
    assert not hours.is_open(monday, local(2026, 12, 8, 10, 0)), "Tuesday has no interval"
    assert hours.next_change(monday, local(2026, 12, 7, 12, 30)) == local(2026, 12, 7, 13, 30)
    assert hours.next_change(monday, local(2026, 12, 7, 18, 0)) == local(2026, 12, 14, 8, 0)


def test_24_00_ends_a_day_and_a_night_shift_runs_into_the_next_day_without_a_change():
    late = rule({"mon": [["18:00", "24:00"]], "tue": [["00:00", "06:00"]]})
    assert hours.is_open(late, local(2026, 12, 7, 23, 59))
    assert hours.is_open(late, local(2026, 12, 8, 0, 0))
    assert hours.next_change(late, local(2026, 12, 7, 20, 0)) == local(2026, 12, 8, 6, 0), "midnight is no change"


def test_a_closed_date_closes_the_whole_day():
    christmas = rule(OPEN_WEEK, closed=["2026-12-25"])
    assert not hours.is_open(christmas, local(2026, 12, 25, 10, 0))
    assert hours.is_open(christmas, local(2026, 12, 24, 23, 0))
    assert hours.next_change(christmas, local(2026, 12, 24, 23, 0)) == local(2026, 12, 25, 0, 0)
    assert hours.next_change(christmas, local(2026, 12, 25, 10, 0)) == local(2026, 12, 26, 0, 0)


def test_business_seconds_count_only_open_time():
    week = rule({"mon": [["08:00", "12:00"], ["13:30", "18:00"]], "tue": [["08:00", "18:00"]]})
    # Monday 11:50 to 13:40: ten minutes before lunch, ten after.
    assert hours.business_seconds(week, local(2026, 12, 7, 11, 50), local(2026, 12, 7, 13, 40)) == 20 * 60
    # Monday 17:55 to Tuesday 08:05: five minutes each side of the night.
    assert hours.business_seconds(week, local(2026, 12, 7, 17, 55), local(2026, 12, 8, 8, 5)) == 10 * 60
    assert hours.business_seconds(rule(CLOSED_WEEK), local(2026, 12, 7), local(2026, 12, 14)) == 0


def test_a_clinic_never_open_or_always_open_never_changes():
    assert hours.next_change(rule(CLOSED_WEEK), timezone.now()) is None
    assert hours.next_change(rule(OPEN_WEEK), timezone.now()) is None
    assert hours.is_open(rule(OPEN_WEEK), timezone.now())


# --- The API --------------------------------------------------------------------------------------------


def test_any_staff_reads_the_hours_and_a_clinic_that_never_set_them_has_a_usual_week(jwt_client, clinic, member):
    body = jwt_client(member).get("/api/clinic/hours/").json()
    assert body["timezone"] == SAO_PAULO
    assert body["week"]["mon"] == [["08:00", "18:00"]] and body["week"]["sun"] == []
    assert (body["away_mode"], body["closed_dates"], body["first_response_target_minutes"]) == ("off", [], 15)


def test_a_clinic_admin_sets_the_hours_audited_and_told_to_every_screen(jwt_client, clinic, admin):
    document = {
        "timezone": "America/Manaus",
        "week": {"mon": [["13:30", "18:00"], ["08:00", "12:00"]], "tue": [["08:00", "24:00"]]},
        "closed_dates": ["2026-12-25", "2026-12-24"],
        "away_mode": "staff",
        "away_message": "Voltamos às 8h.",
        "first_response_target_minutes": 20,
    }
    response = jwt_client(admin).put("/api/clinic/hours/", document, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["week"]["mon"] == [["08:00", "12:00"], ["13:30", "18:00"]], "kept in order"
    assert body["week"]["wed"] == [] and body["closed_dates"] == ["2026-12-24", "2026-12-25"]
    assert body["timezone"] == "America/Manaus" and Clinic.objects.get(pk=clinic.pk).timezone == "America/Manaus"
    assert jwt_client(admin).get("/api/clinic/hours/").json() == body
    audit = AuditEvent.objects.get(action="clinic.hours_changed")
    assert audit.actor_id == admin.pk and "week" in audit.detail["fields"] and "timezone" in audit.detail["fields"]
    assert Event.objects.filter(clinic=clinic, type="clinic:hours").count() == 1
    # Some fields alone: the others stay.
    again = jwt_client(admin).put("/api/clinic/hours/", {"away_mode": "always"}, format="json").json()
    assert again == body | {"away_mode": "always"}


@pytest.mark.parametrize(
    "change,field",
    [
        ({"week": {"mon": [["08:00", "12:00"], ["11:00", "14:00"]]}}, "week.mon"),
        ({"week": {"tue": [["8:00", "12:00"]]}}, "week.tue"),
        ({"week": {"wed": [["08:00", "25:00"]]}}, "week.wed"),
        ({"week": {"thu": [["12:00", "08:00"]]}}, "week.thu"),
        ({"week": {"fri": [["08:00"]]}}, "week.fri"),
        ({"week": {"fri": "08:00-12:00"}}, "week.fri"),
        ({"week": {"funday": []}}, "week"),
        ({"week": []}, "week"),
        ({"closed_dates": ["25/12/2026"]}, "closed_dates"),
        ({"closed_dates": "2026-12-25"}, "closed_dates"),
        ({"timezone": "Brasil/Sao Paulo"}, "timezone"),
        ({"timezone": 3}, "timezone"),
        ({"away_mode": "sometimes"}, "away_mode"),
        ({"away_mode": "always", "away_message": "  "}, "away_message"),
        ({"away_message": "x" * 1001}, "away_message"),
        ({"away_message": "fechado\u0000"}, "away_message"),
        ({"timezone": "Asia/Kolkata"}, "timezone"),
        ({"first_response_target_minutes": 0}, "first_response_target_minutes"),
        ({"first_response_target_minutes": "15"}, "first_response_target_minutes"),
        ({"first_response_target_minutes": True}, "first_response_target_minutes"),
        ({"opening_hours": {}}, "opening_hours"),
    ],
)
def test_bad_hours_are_a_400_naming_the_field_and_change_nothing(jwt_client, clinic, admin, change, field):
    before = jwt_client(admin).get("/api/clinic/hours/").json()
    response = jwt_client(admin).put("/api/clinic/hours/", change, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["field"] == field
    assert jwt_client(admin).get("/api/clinic/hours/").json() == before
    assert not AuditEvent.objects.filter(action="clinic.hours_changed").exists()


def test_a_character_postgresql_cannot_store_is_a_400_naming_the_field(jwt_client, admin):
    body = b'{"away_mode": "always", "away_message": "fechado \\ud800"}'  # a lone surrogate, as JSON allows
    response = jwt_client(admin).put("/api/clinic/hours/", body, content_type="application/json")
    assert response.status_code == 400 and response.json()["field"] == "away_message"
    assert not BusinessHours.objects.exists()


def test_a_body_that_is_not_an_object_is_a_400(jwt_client, admin):
    api = jwt_client(admin)
    assert api.put("/api/clinic/hours/", ["mon"], format="json").status_code == 400
    response = api.put("/api/clinic/hours/", b"{week", content_type="application/json")
    assert response.status_code == 400 and not BusinessHours.objects.exists()


@pytest.mark.parametrize("role", [Role.RECEPTIONIST, Role.PROFESSIONAL])
def test_only_clinic_admins_change_the_hours(jwt_client, clinic, make_member, role):
    response = jwt_client(make_member(clinic, role)).put("/api/clinic/hours/", {"week": CLOSED_WEEK}, format="json")
    assert response.status_code == 403 and not BusinessHours.objects.exists()


def test_another_clinics_admin_changes_only_their_own_clinics_hours(jwt_client, clinic, outsider, other_clinic):
    response = jwt_client(outsider).put("/api/clinic/hours/", {"week": CLOSED_WEEK}, format="json")
    assert response.status_code == 200
    assert BusinessHours.objects.get().clinic_id == other_clinic.pk
    assert clinic_hours.of(clinic.pk).is_open(local(2026, 12, 7, 10, 0)), "clinic A keeps its usual week"


def test_open_answers_staff_and_the_clinics_n8n_token(jwt_client, client, clinic, admin, other_clinic):
    from conversations.actions.integrations import create_integration_token

    _, raw = create_integration_token(clinic=clinic, actor=admin, name="n8n")
    set_hours(clinic, admin, week=CLOSED_WEEK)
    assert jwt_client(admin).get("/api/clinic/open/").json() == {"open": False, "next_change_at": None}
    n8n = client.get("/webhooks/n8n/aurora/open/", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert n8n.status_code == 200 and n8n.json() == {"open": False, "next_change_at": None}
    set_hours(clinic, admin, week=OPEN_WEEK)
    assert jwt_client(admin).get("/api/clinic/open/").json() == {"open": True, "next_change_at": None}
    # Open tomorrow from 10:00 to 11:00 only: closed now, and the next change is that opening.
    tomorrow = timezone.now().astimezone(clinic.tzinfo).date() + timedelta(days=1)
    opens = local(tomorrow.year, tomorrow.month, tomorrow.day, 10, 0)
    set_hours(clinic, admin, week={hours.DAYS[tomorrow.weekday()]: [["10:00", "11:00"]]})
    answer = client.get("/webhooks/n8n/aurora/open/", HTTP_AUTHORIZATION=f"Bearer {raw}").json()
    assert answer["open"] is False and datetime.fromisoformat(answer["next_change_at"]) == opens
    assert client.get("/webhooks/n8n/aurora/open/").status_code == 401
    assert client.get("/webhooks/n8n/boreal/open/", HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 401


# --- The away message -----------------------------------------------------------------------------------


@pytest.fixture
def graph(settings, whatsapp_channel):
    with respx.mock(assert_all_called=False) as router:
        router.post(f"{settings.WHATSAPP_GRAPH_URL}/{NUMBER}/messages").mock(return_value=accepted("wamid.AWAY"))
        yield router


@pytest.mark.django_db(transaction=True)
def test_a_clinic_closed_all_week_answers_two_messages_with_exactly_one_away_message(clinic, admin, graph):
    set_hours(clinic, admin, week=CLOSED_WEEK)
    patient_writes("Oi, boa noite", 1)
    patient_writes("Vocês atendem amanhã?", 2)
    (away,) = away_messages(clinic)
    assert (away.direction, away.sender_type, away.status) == ("outbound", "system", "pending")
    assert away.content == "Estamos fechados agora; respondemos assim que abrirmos."
    run_worker()  # the normal delivery path: the worker hands it to WhatsApp
    away.refresh_from_db()
    assert (away.status, away.external_id) == ("sent", "wamid.AWAY")
    sent = json.loads(graph.calls.last.request.content)
    assert sent["to"] == "5511987654321" and sent["text"]["body"] == away.content
    # A restart (nothing held in memory) and another message: still one.
    clinic_hours.forget()
    inbound_fast.forget_snapshots()
    patient_writes("Alô?", 3)
    assert away_messages(clinic).count() == 1
    frames = Event.objects.filter(clinic=clinic, type="message:new", data__message__id=away.pk)
    assert frames.count() == 1, "every screen was told of it"


@pytest.mark.django_db(transaction=True)
def test_each_patient_gets_it_once_and_a_later_closed_period_sends_it_again(clinic, admin, graph):
    # Open yesterday from 10:00 to 11:00 only: closed now, since yesterday at 11:00.
    yesterday = timezone.now().astimezone(clinic.tzinfo).date() - timedelta(days=1)
    set_hours(clinic, admin, week={hours.DAYS[yesterday.weekday()]: [["10:00", "11:00"]]})
    patient_writes("Oi", 1, phone="5511911110001")
    patient_writes("Oi", 2, phone="5511922220002")
    assert away_messages(clinic).count() == 2, "once per conversation"
    # The first patient's away message was for the closed period before yesterday's opening: moved there.
    before = local(yesterday.year, yesterday.month, yesterday.day, 9, 0)
    opening = local(yesterday.year, yesterday.month, yesterday.day, 10, 0)
    away_messages(clinic).filter(conversation__contact__phone="5511911110001").update(created_at=before)
    Conversation.objects.filter(contact__phone="5511911110001").update(away_sent_for=opening)
    patient_writes("Ainda fechados?", 3, phone="5511911110001")
    assert away_messages(clinic).count() == 3, "a new closed period: the away message again"
    patient_writes("Alô?", 4, phone="5511911110001")
    assert away_messages(clinic).count() == 3


@pytest.mark.django_db(transaction=True)
def test_hours_changed_during_a_closed_period_send_no_second_away_message(clinic, admin, graph):
    """The period is named by when it ends: hours edited meanwhile rename it, yet it is the same night."""
    tomorrow = timezone.now().astimezone(clinic.tzinfo).date() + timedelta(days=1)
    set_hours(clinic, admin, week={hours.DAYS[tomorrow.weekday()]: [["10:00", "11:00"]]})
    patient_writes("Oi", 1)
    set_hours(clinic, admin, week={hours.DAYS[tomorrow.weekday()]: [["09:00", "11:00"]]})
    patient_writes("Vocês abrem às 9h?", 2)
    assert away_messages(clinic).count() == 1


@pytest.mark.django_db(transaction=True)
def test_no_away_message_while_open_when_off_or_for_an_old_message(clinic, admin, graph):
    set_hours(clinic, admin, week=OPEN_WEEK)
    patient_writes("Bom dia", 1)
    set_hours(clinic, admin, week=CLOSED_WEEK, away_mode="off")
    patient_writes("Olá", 2, phone="5511933330003")
    set_hours(clinic, admin, week=CLOSED_WEEK)
    patient_writes("Mensagem antiga entregue agora", 3, phone="5511944440004", at=timezone.now() - timedelta(hours=3))
    assert not away_messages(clinic).exists()


@pytest.mark.django_db(transaction=True)
def test_mode_staff_answers_only_conversations_staff_have_taken(clinic, admin, member, graph):
    set_hours(clinic, admin, week=CLOSED_WEEK, away_mode="staff")
    patient_writes("Oi", 1)
    assert not away_messages(clinic).exists(), "the assistant answers this one itself"
    conversation = Conversation.objects.get(clinic=clinic)
    set_answered_by(conversation=conversation, answered_by="staff", actor=member)
    patient_writes("Alguém aí?", 2)
    assert away_messages(clinic).count() == 1


@pytest.mark.django_db(transaction=True)
def test_no_away_message_when_staff_answered_minutes_ago(clinic, admin, member, graph):
    set_hours(clinic, admin, week=OPEN_WEEK)
    patient_writes("Oi", 1)
    conversation = Conversation.objects.get(clinic=clinic)
    send_outbound_message(conversation=conversation, sender=member, content="Olá! Em que posso ajudar?")
    set_hours(clinic, admin, week=CLOSED_WEEK)  # the clinic closes while they talk
    patient_writes("Quero marcar consulta", 2)
    assert not away_messages(clinic).exists(), "the conversation is attended: no away message on top"


@pytest.mark.django_db(transaction=True)
def test_a_clinic_without_a_whatsapp_number_sends_no_away_message(clinic, admin):
    from conversations.actions.inbound import receive_inbound_message

    set_hours(clinic, admin, week=CLOSED_WEEK)
    receive_inbound_message(clinic=clinic, phone="5511987654321", content="Oi", external_id="n8n-1")
    assert not away_messages(clinic).exists()


@pytest.mark.django_db(transaction=True)
def test_the_webhooks_fast_path_stays_one_statement_while_open_and_yields_to_the_away_message_when_closed(
    clinic, admin, whatsapp_channel
):
    if connection.vendor != "postgresql":
        pytest.skip("the fast path is PostgreSQL's")
    set_hours(clinic, admin, week=OPEN_WEEK)
    patient_writes("Oi", 1)
    clinic_hours.of(clinic.pk)
    with CaptureQueriesContext(connection) as queries:
        patient_writes("Bom dia", 2)
    assert len(queries) == 1, [q["sql"][:80] for q in queries]
    set_hours(clinic, admin, week=CLOSED_WEEK)
    with respx.mock(assert_all_called=False):
        patient_writes("Boa noite", 3)
    assert away_messages(clinic).count() == 1


def test_the_timeline_shows_the_away_message_as_an_automatic_reply(client, clinic, admin, simulated_number):
    from conversations.actions.inbound import receive_inbound_message

    set_hours(clinic, admin, week=CLOSED_WEEK)
    conversation = receive_inbound_message(
        clinic=clinic, phone="5511987654321", content="Oi", external_id="wamid.1", happened_at=timezone.now()
    ).conversation
    client.force_login(admin)
    page = client.get(f"/inbox/{conversation.pk}/").content.decode()
    assert "Resposta automática" in page and "Estamos fechados agora" in page


def test_a_change_of_hours_is_seen_at_once_by_this_process(clinic, admin):
    set_hours(clinic, admin, week=OPEN_WEEK)
    assert clinic_hours.of(clinic.pk).is_open(datetime.now(UTC))
    set_hours(clinic, admin, week=CLOSED_WEEK)
    assert not clinic_hours.of(clinic.pk).is_open(datetime.now(UTC))
