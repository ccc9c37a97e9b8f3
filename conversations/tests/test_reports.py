"""The manager's reports (DESIGN §12), through the public surface: patients write through the WhatsApp
webhook (with WhatsApp's own timestamps), staff answer through the API, the assistant through n8n's webhook,
and the figures are read from /api/reports/ — as JSON and as CSV."""

import csv
import io
import json
import statistics
from datetime import datetime, timedelta

import pytest
from django.db import connection
from django.utils import timezone

from conftest import APP_SECRET
from conversations import reports
from conversations.actions.integrations import create_integration_token
from conversations.management.commands.simulate_patients import notification
from conversations.models import ActivityFact, Conversation, ConversationFact, Role
from conversations.tests.test_business_hours import CLOSED_WEEK, OPEN_WEEK, set_hours
from conversations.webhooks.whatsapp import receive_notification, signature_of

pytestmark = pytest.mark.django_db(transaction=True)
NUMBER = "106540352242922"


@pytest.fixture
def admin(clinic, make_member):
    return make_member(clinic, Role.ADMIN, first_name="Helena", last_name="Prado")


@pytest.fixture
def open_clinic(clinic, admin, whatsapp_channel):
    set_hours(clinic, admin, OPEN_WEEK, away_mode="off")
    return clinic


def patient_writes(text: str, *, phone: str = "5511987654321", at: datetime | None = None, n: int = 0) -> Conversation:
    payload = notification(NUMBER, text, n, phone=phone, name="Maria Souza")
    if at is not None:
        payload["entry"][0]["changes"][0]["value"]["messages"][0]["timestamp"] = str(int(at.timestamp()))
    body = json.dumps(payload).encode()
    status, answer = receive_notification(body, signature_of(body, APP_SECRET))
    assert status == 200 and answer["received"]["messages"] == 1, answer
    return Conversation.objects.get(contact__phone=phone)


def today(clinic) -> str:
    return timezone.now().astimezone(clinic.tzinfo).date().isoformat()


def yesterday(clinic) -> str:
    return (timezone.now().astimezone(clinic.tzinfo).date() - timedelta(days=1)).isoformat()


def report(api, clinic, **query) -> dict:
    """The report of yesterday and today (a message minutes ago may be yesterday's, just after midnight)."""
    query = {"from": yesterday(clinic), "to": today(clinic)} | query
    response = api.get("/api/reports/", query)
    assert response.status_code == 200, response.content
    return response.json()


def test_a_staff_reply_ten_minutes_after_the_patient_wrote_is_a_600_second_first_response(
    jwt_client, open_clinic, admin, member
):
    conversation = patient_writes("Quero marcar uma consulta", at=timezone.now() - timedelta(seconds=600))
    sent = jwt_client(member).post(
        f"/api/conversations/{conversation.pk}/messages/", {"content": "Claro! Para quando?"}, format="json"
    )
    assert sent.status_code == 201, sent.content
    figures = report(jwt_client(admin), open_clinic)
    first = figures["first_response"]
    assert first["count"] == 1
    assert 595 <= first["median_seconds"] <= 615 and 595 <= first["p90_seconds"] <= 615
    assert 595 <= first["business_median_seconds"] <= 615, "open all day: business time is wall time"
    assert figures["conversations"] == {"opened": 1, "resolved": 0}
    assert figures["messages"]["inbound"] == 1 and figures["messages"]["outbound"] == 1
    assert figures["answered_by"] == {"assistant": 0, "staff": 1}
    (julia,) = figures["by_member"]
    assert (julia["user_id"], julia["name"], julia["replies"], julia["first_responses"]) == (
        member.pk,
        "Júlia Carvalho",
        1,
        1,
    )
    assert 595 <= julia["first_response_median_seconds"] <= 615
    assert len(figures["by_hour"]) == 7 and all(len(day) == 24 for day in figures["by_hour"])
    assert sum(map(sum, figures["by_hour"])) == 1


def test_the_csv_has_one_row_per_conversation_with_times_and_who_answered_and_no_text(
    jwt_client, open_clinic, admin, member
):
    conversation = patient_writes("Tenho dor no peito desde ontem", at=timezone.now() - timedelta(seconds=300))
    jwt_client(member).post(f"/api/conversations/{conversation.pk}/messages/", {"content": "Venha já!"}, format="json")
    response = jwt_client(admin).get("/api/reports/", {"from": "2026-01-01", "to": today(open_clinic), "format": "csv"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    text = b"".join(response.streaming_content).decode()
    assert "dor no peito" not in text and "Venha" not in text, "never a message's text"
    assert "5511987654321" not in text and "Maria" not in text, "nor who the patient is"
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 1 and tuple(rows[0]) == reports.CSV_COLUMNS
    row = rows[0]
    assert row["conversation_id"] == str(conversation.pk) and row["first_response_by"] == "staff"
    assert row["first_responder"] == "Júlia Carvalho" and 295 <= int(row["first_response_seconds"]) <= 315
    assert datetime.fromisoformat(row["opened_at"]).utcoffset() == timedelta(hours=-3), "in the clinic's time"


def test_the_assistant_answering_alone_is_told_from_staff_answering(jwt_client, client, open_clinic, admin, member):
    _, token = create_integration_token(clinic=open_clinic, name="n8n")
    by_assistant = patient_writes("Qual o endereço?", phone="5511911110001")
    answer = client.post(
        "/webhooks/n8n/aurora/",
        {"phone": "5511911110001", "content": "Rua das Flores, 100.", "sender_type": "ai"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert answer.status_code == 201, answer.content
    by_staff = patient_writes("Preciso remarcar", phone="5511922220002")
    jwt_client(member).post(f"/api/conversations/{by_staff.pk}/messages/", {"content": "Claro."}, format="json")
    figures = report(jwt_client(admin), open_clinic)
    assert figures["answered_by"] == {"assistant": 1, "staff": 1}
    assert figures["first_response"]["count"] == 2
    assert figures["messages"]["assistant"] == 1 and figures["messages"]["staff"] == 1
    assert [m["user_id"] for m in figures["by_member"]] == [member.pk], "the assistant is no staff member"
    assert by_assistant.pk != by_staff.pk


def test_the_away_message_is_no_answer(jwt_client, clinic, admin, member, whatsapp_channel):
    set_hours(clinic, admin, CLOSED_WEEK, away_message="Estamos fechados.")
    conversation = patient_writes("Boa noite")
    figures = report(jwt_client(admin), clinic)
    assert figures["first_response"]["count"] == 0, "the automatic away message answers nothing"
    assert figures["messages"] == {"inbound": 1, "outbound": 1, "staff": 0, "assistant": 0, "automatic": 1}
    jwt_client(member).post(f"/api/conversations/{conversation.pk}/messages/", {"content": "Bom dia!"}, format="json")
    first = report(jwt_client(admin), clinic)["first_response"]
    assert first["count"] == 1 and first["business_median_seconds"] == 0, "closed all the while: no business time"


def test_resolution_time_and_who_resolved_and_a_reopened_conversation_is_a_new_attendance(
    jwt_client, open_clinic, admin, member
):
    conversation = patient_writes("Oi", at=timezone.now() - timedelta(seconds=120))
    resolved = jwt_client(member).patch(f"/api/conversations/{conversation.pk}/", {"status": "resolved"}, format="json")
    assert resolved.status_code == 200
    figures = report(jwt_client(admin), open_clinic)
    assert figures["conversations"] == {"opened": 1, "resolved": 1}
    assert figures["resolution"]["count"] == 1 and 115 <= figures["resolution"]["median_seconds"] <= 140
    assert figures["by_member"][0]["resolved"] == 1
    patient_writes("Mais uma dúvida", n=1)  # reopens it
    again = report(jwt_client(admin), open_clinic)
    assert again["conversations"] == {"opened": 2, "resolved": 1}
    assert ConversationFact.objects.filter(conversation_id=conversation.pk).count() == 2


def test_patients_messages_are_counted_by_the_clinics_weekday_and_hour(jwt_client, open_clinic, admin):
    local = timezone.now().astimezone(open_clinic.tzinfo).replace(hour=14, minute=30) - timedelta(days=1)
    patient_writes("Primeira", at=local)  # a new patient's first message
    patient_writes("Segunda", at=local + timedelta(minutes=5), n=1)  # the usual message
    day = local.date().isoformat()
    figures = report(jwt_client(admin), open_clinic, **{"from": day, "to": day})
    assert figures["by_hour"][local.weekday()][14] == 2
    assert figures["by_day"] == [{"date": day, "opened": 1, "resolved": 0, "inbound": 2, "outbound": 0}]


def test_the_figures_survive_the_patients_erasure(jwt_client, open_clinic, admin, member, settings):
    settings.READ_CACHE = False  # each report computed from the facts, not a copy of the one before
    conversation = patient_writes("Meus exames", at=timezone.now() - timedelta(seconds=200))
    jwt_client(member).post(f"/api/conversations/{conversation.pk}/messages/", {"content": "Recebido."}, format="json")
    before = report(jwt_client(admin), open_clinic)
    erased = jwt_client(admin).post(f"/api/contacts/{conversation.contact_id}/erase/", {"confirm": True}, format="json")
    assert erased.status_code == 200, erased.content
    assert report(jwt_client(admin), open_clinic) == before


@pytest.mark.parametrize("role", [Role.RECEPTIONIST, Role.PROFESSIONAL])
def test_only_clinic_admins_read_reports(jwt_client, clinic, make_member, role):
    api = jwt_client(make_member(clinic, role))
    assert api.get("/api/reports/").status_code == 403
    assert api.get("/api/reports/", {"format": "csv"}).status_code == 403


@pytest.mark.parametrize(
    "query,field",
    [
        ({"from": "2026-13-01"}, "from"),
        ({"to": "ontem"}, "to"),
        ({"from": "2026-12-07", "to": "2026-12-01"}, "from"),
        ({"from": "2024-01-01", "to": "2026-01-01"}, "to"),
        ({"from": "2026-12-07", "to": "2026-12-01", "format": "csv"}, "from"),
        ({"from": "9999-12-31", "to": "9999-12-31"}, "from"),
        ({"from": "0001-01-01", "to": "0001-01-02"}, "from"),
        ({"to": "9999-12-31", "format": "csv"}, "to"),
        ({"format": "xml"}, "format"),
    ],
)
def test_a_bad_range_is_a_400_naming_the_field(jwt_client, clinic, admin, query, field):
    response = jwt_client(admin).get("/api/reports/", query)
    assert response.status_code == 400 and response["Content-Type"] == "application/json"
    assert response.json()["field"] == field


def test_without_a_range_the_report_covers_the_last_30_days(jwt_client, clinic, admin):
    figures = jwt_client(admin).get("/api/reports/").json()
    assert figures["to"] == today(clinic) and len(figures["by_day"]) == reports.DEFAULT_DAYS


def test_another_clinics_admin_sees_none_of_its_figures(jwt_client, open_clinic, outsider, member):
    conversation = patient_writes("Oi")
    jwt_client(member).post(f"/api/conversations/{conversation.pk}/messages/", {"content": "Olá"}, format="json")
    theirs = jwt_client(outsider).get("/api/reports/").json()
    assert theirs["conversations"] == {"opened": 0, "resolved": 0} and theirs["messages"]["inbound"] == 0
    assert theirs["by_member"] == [] and sum(map(sum, theirs["by_hour"])) == 0
    csv_text = b"".join(jwt_client(outsider).get("/api/reports/", {"format": "csv"}).streaming_content).decode()
    assert csv_text.strip() == ",".join(reports.CSV_COLUMNS)


def test_inbound_counts_spread_over_shards_add_up(open_clinic):
    for n in range(12):
        patient_writes("Oi", phone=f"55119{n:08d}", n=n)
    rows = ActivityFact.objects.filter(clinic=open_clinic)
    assert sum(r.inbound for r in rows) == 12 and rows.count() > 1


def test_the_percentile_of_sqlite_is_postgresqls():
    if connection.vendor != "postgresql":
        pytest.skip("compares with PostgreSQL's percentile_cont")
    values = [3.0, 61.0, 7.5, 600.0, 1200.0, 45.0, 45.0, 90.0, 12.0, 3600.0, 0.0]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY v), percentile_cont(0.9) WITHIN GROUP (ORDER BY v) "
            "FROM unnest(%s::float8[]) AS v",
            [values],
        )
        median, p90 = cursor.fetchone()
    assert reports._percentile(values, 0.5) == pytest.approx(median) == statistics.median(values)
    assert reports._percentile(values, 0.9) == pytest.approx(p90)


def test_facts_rebuilt_from_the_messages_tell_what_was_recorded_live(jwt_client, open_clinic, admin, member):
    """History from before the reports (an upgrade) is rebuilt from the messages kept: the figures come out
    as the ones the actions recorded as it happened."""
    from django.core.management import call_command

    first = patient_writes("Oi", phone="5511911110001", at=timezone.now() - timedelta(seconds=900))
    jwt_client(member).post(f"/api/conversations/{first.pk}/messages/", {"content": "Olá!"}, format="json")
    jwt_client(member).patch(f"/api/conversations/{first.pk}/", {"status": "resolved"}, format="json")
    waiting = patient_writes("Alguém?", phone="5511922220002", at=timezone.now() - timedelta(seconds=300))
    live = report(jwt_client(admin), open_clinic)
    out = io.StringIO()
    call_command("rebuild_report_facts", stdout=out)
    assert "0 attendances, 0 hours" in out.getvalue(), "nothing came before the facts recorded live"
    assert report(jwt_client(admin), open_clinic) == live
    ActivityFact.objects.all().delete()  # as before an upgrade: messages, and no facts
    ConversationFact.objects.all().delete()
    Conversation.objects.update(awaiting_since=None)
    call_command("rebuild_report_facts", "--clinic", "aurora", stdout=out)
    assert "2 attendances" in out.getvalue() and "1 conversations awaiting" in out.getvalue()
    rebuilt = report(jwt_client(admin), open_clinic)
    for key in ("first_response", "conversations", "messages", "answered_by", "by_hour"):
        assert rebuilt[key] == live[key], key
    assert [m["replies"] for m in rebuilt["by_member"]] == [m["replies"] for m in live["by_member"]]
    waiting.refresh_from_db()
    assert waiting.awaiting_since is not None


def test_the_demo_clinics_have_reports(jwt_client, django_user_model):
    from django.core.management import call_command

    call_command("seed_demo", verbosity=0)
    admin = django_user_model.objects.get(username="ana.admin")
    admin.set_password("senha-de-teste-123")  # the fixtures' password
    admin.save()
    figures = jwt_client(admin).get("/api/reports/").json()
    assert figures["messages"]["inbound"] > 0 and figures["first_response"]["count"] > 0
    assert figures["by_member"], "the demo's staff answered"


def test_a_cached_report_is_never_older_than_the_last_message_resolution_or_change_of_hours(
    jwt_client, open_clinic, admin, member, settings
):
    settings.READ_CACHE = True
    api = jwt_client(admin)
    assert report(api, open_clinic)["messages"]["inbound"] == 0
    assert report(api, open_clinic)["messages"]["inbound"] == 0  # from the cache now
    conversation = patient_writes("Oi", at=timezone.now() - timedelta(minutes=20))
    assert report(api, open_clinic)["messages"]["inbound"] == 1
    jwt_client(member).post(f"/api/conversations/{conversation.pk}/messages/", {"content": "Olá"}, format="json")
    assert report(api, open_clinic)["first_response"]["within_target"] == 0, "20 min: past the 15-minute target"
    api.put("/api/clinic/hours/", {"first_response_target_minutes": 30}, format="json")
    assert report(api, open_clinic)["first_response"]["within_target"] == 1
    jwt_client(member).patch(f"/api/conversations/{conversation.pk}/", {"status": "resolved"}, format="json")
    assert report(api, open_clinic)["conversations"]["resolved"] == 1


def test_the_csv_comes_page_by_page_whole_and_in_order_for_the_server_too(
    jwt_client, open_clinic, admin, member, monkeypatch
):
    import asyncio

    monkeypatch.setattr(reports, "CSV_PAGE", 2)
    at = timezone.now() - timedelta(hours=1)
    for n in range(5):
        patient_writes("Oi", phone=f"5511933330{n:03d}", at=at, n=n)  # the same second: the id orders them
    response = jwt_client(admin).get("/api/reports/", {"format": "csv"})
    pages = [page for page in response.streaming_content]
    rows = list(csv.DictReader(io.StringIO(b"".join(pages).decode())))
    assert len(pages) == 3 and len(rows) == 5
    ids = [int(row["attendance_id"]) for row in rows]
    assert ids == sorted(ids) == sorted(ConversationFact.objects.values_list("pk", flat=True))
    period = reports.period_of(open_clinic, None, None, today=timezone.now().astimezone(open_clinic.tzinfo).date())

    async def served() -> str:
        return "".join([page async for page in reports.acsv_pages(period)])

    assert asyncio.run(served()) == "".join(reports.csv_pages(period)) == b"".join(pages).decode()


def test_history_from_before_the_facts_is_added_once_and_live_figures_are_left_whole(
    jwt_client, open_clinic, admin, member, settings
):
    """An upgrade: a conversation of ten days ago (stored before reports existed: no facts) and live traffic
    since. The rebuild adds the old one, leaves today's as recorded, and adds nothing the second time."""
    from django.core.management import call_command

    from conversations.models import Contact, Message

    settings.READ_CACHE = False
    today = report(jwt_client(admin), open_clinic)
    old_at = timezone.now().astimezone(open_clinic.tzinfo).replace(hour=10, minute=0) - timedelta(days=10)
    patient = Contact.objects.create(clinic=open_clinic, phone="5511955550000", name="Antiga")
    old = Conversation.objects.create(clinic=open_clinic, contact=patient, created_at=old_at, last_message_at=old_at)
    for minutes, sender in ((0, "patient"), (6, "professional"), (30, "patient")):
        Message.objects.create(
            clinic=open_clinic,
            conversation=old,
            direction="inbound" if sender == "patient" else "outbound",
            sender_type=sender,
            sender=member if sender == "professional" else None,
            content="antes",
            status="delivered",
            created_at=old_at + timedelta(minutes=minutes),
        )
    patient_writes("Hoje", at=timezone.now() - timedelta(minutes=3))  # live, after the upgrade
    out = io.StringIO()
    call_command("rebuild_report_facts", "--clinic", "aurora", stdout=out)
    assert "1 attendances" in out.getvalue() and "1 conversations awaiting" in out.getvalue()
    day = old_at.astimezone(open_clinic.tzinfo).date().isoformat()
    then = report(jwt_client(admin), open_clinic, **{"from": day, "to": day})
    assert then["messages"]["inbound"] == 2 and then["messages"]["staff"] == 1
    assert then["first_response"]["count"] == 1 and 355 <= then["first_response"]["median_seconds"] <= 365
    now = report(jwt_client(admin), open_clinic)
    assert now["messages"]["inbound"] == today["messages"]["inbound"] + 1, "the live message, counted once"
    old.refresh_from_db()
    assert old.awaiting_since == old_at + timedelta(minutes=30)
    call_command("rebuild_report_facts", "--clinic", "aurora", stdout=out)
    assert (
        out.getvalue()
        .rstrip()
        .endswith("0 attendances, 0 hours of messages, 0 conversations awaiting an answer added.")
    )
    assert report(jwt_client(admin), open_clinic, **{"from": day, "to": day}) == then
