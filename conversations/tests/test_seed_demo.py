"""seed_demo: a realistic demo installation, safe to run again, and able to grow in bulk."""

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command
from django.utils import timezone

from conversations.actions.demo import CONTACTS_PER_SCALE, seed_demo
from conversations.demo_content import DEMO_PASSWORD, STAFF
from conversations.models import Clinic, Contact, Conversation, Membership, Message, MessageType, ReadMarker, Role


def counts() -> dict[str, int]:
    return {
        "clinics": Clinic.objects.count(),
        "memberships": Membership.objects.count(),
        "contacts": Contact.objects.count(),
        "conversations": Conversation.objects.count(),
        "messages": Message.objects.count(),
        "markers": ReadMarker.objects.count(),
    }


@pytest.fixture
def seeded(db):
    return seed_demo(scale=1)


def test_two_clinics_with_staff_of_every_role_who_can_log_in(seeded):
    assert Clinic.objects.count() == 2
    for clinic in Clinic.objects.all():
        assert set(clinic.memberships.values_list("role", flat=True)) == set(Role.values)
    for username, *_ in STAFF:
        assert authenticate(username=username, password=DEMO_PASSWORD) is not None
    assert Membership.objects.filter(user__username="dra.marina").count() == 2


def test_history_covers_every_status_type_and_today_and_earlier_days(seeded):
    assert set(Conversation.objects.values_list("status", flat=True)) == {"open", "pending", "resolved"}
    assert set(Message.objects.values_list("message_type", flat=True)) == set(MessageType.values)
    assert set(Message.objects.values_list("status", flat=True)) == {"pending", "sent", "delivered", "read", "failed"}
    assert set(Message.objects.values_list("sender_type", flat=True)) >= {"patient", "professional", "ai"}
    for clinic in Clinic.objects.all():
        local_today = timezone.localtime(timezone.now(), clinic.tzinfo).date()
        days = {
            timezone.localtime(at, clinic.tzinfo).date()
            for at in clinic.conversations.values_list("last_message_at", flat=True)
        }
        assert local_today in days and any(day < local_today for day in days)
    assert (
        Message.objects.filter(status="failed").exclude(error="").count()
        == Message.objects.filter(status="failed").count()
    )


def test_patients_have_brazilian_names_and_mobile_numbers(seeded):
    for contact in Contact.objects.exclude(phone=""):
        assert len(contact.name.split()) == 3
        assert contact.phone.startswith(("5511", "5592")) and len(contact.phone) == 13 and contact.phone[4] == "9"


def test_each_clinic_has_a_patient_known_by_whatsapp_user_id_alone(seeded):
    for clinic in Clinic.objects.all():
        patient = Contact.objects.get(clinic=clinic, phone="")
        assert patient.whatsapp_user_id.startswith("BR.") and patient.whatsapp_username == "lu.ferraz"
        assert (patient.display_name, patient.phone_display) == ("Luísa F.", "sem telefone")
        kinds = set(patient.conversations.get().messages.values_list("sender_type", "message_type"))
        assert {("patient", "text"), ("professional", "text"), ("system", "system")} <= kinds


def test_conversations_record_their_last_activity(seeded):
    conversation = Conversation.objects.first()
    latest = conversation.messages.order_by("-created_at").first()
    assert conversation.last_message_at == latest.created_at


def test_running_again_changes_nothing(seeded):
    before = counts()
    report = seed_demo(scale=1)
    assert counts() == before
    assert (report.contacts, report.messages) == (0, 0)


def test_a_larger_scale_adds_only_the_difference(seeded):
    seed_demo(scale=3)
    with_phone = Contact.objects.exclude(phone="")
    assert with_phone.count() == 2 * 3 * CONTACTS_PER_SCALE
    assert with_phone.values("clinic", "phone").distinct().count() == with_phone.count()
    before = counts()
    seed_demo(scale=3)
    assert counts() == before


def test_the_command_prints_the_logins_and_refuses_a_bad_scale(db, capsys):
    call_command("seed_demo")
    out = capsys.readouterr().out
    assert DEMO_PASSWORD in out and "ana.admin" in out and "dra.marina" in out
    with pytest.raises(SystemExit):
        call_command("seed_demo", "--scale", "0")
    assert "--scale must be 1 or more" in capsys.readouterr().err


def test_the_benchmark_clinics_are_made_once_each_with_a_receptionist_and_a_simulated_channel(db):
    from conversations.actions.demo import seed_bench_clinics
    from conversations.models import Membership, WhatsAppChannel

    first = seed_bench_clinics(3)
    again = seed_bench_clinics(3)
    assert first == again and [c.slug for c in first] == ["bench-1", "bench-2", "bench-3"]
    assert WhatsAppChannel.objects.filter(phone_number_id__startswith="bench-", simulated=True).count() == 3
    assert Membership.objects.filter(clinic__slug="bench-2", user__username="bench.2", role="receptionist").exists()


def test_each_clinic_starts_with_labels_and_quick_replies(seeded):
    from conversations.models import Label, QuickReply

    for clinic in Clinic.objects.all():
        assert Label.objects.filter(clinic=clinic).count() == 3
        assert set(QuickReply.objects.filter(clinic=clinic).values_list("shortcut", flat=True)) == {
            "endereco",
            "horarios",
            "retorno",
        }
    seed_demo(scale=1)  # again: nothing doubled
    assert Label.objects.count() == 6 and QuickReply.objects.count() == 6
