"""check_whatsapp against the Graph API (mocked at the HTTP boundary) and simulate_patients against a live server."""

import httpx
import pytest
import respx
from django.core.management import call_command
from django.core.management.base import CommandError

from conversations.models import Contact, Message, WhatsAppChannel


@pytest.fixture
def graph_number(settings, whatsapp_channel):
    with respx.mock(assert_all_called=False) as router:
        yield router.get(f"{settings.WHATSAPP_GRAPH_URL}/{whatsapp_channel.phone_number_id}")


def test_check_whatsapp_reports_the_number(graph_number, capsys):
    graph_number.mock(
        return_value=httpx.Response(
            200,
            json={
                "display_phone_number": "+55 11 3000-1000",
                "verified_name": "Clínica Aurora",
                "quality_rating": "GREEN",
                "id": "106540352242922",
            },
        )
    )
    call_command("check_whatsapp", "aurora")
    assert "OK: +55 11 3000-1000 (Clínica Aurora), quality GREEN." in capsys.readouterr().out
    assert graph_number.calls.last.request.headers["Authorization"] == "Bearer EAAG-test-token"


def test_check_whatsapp_explains_a_refused_token(graph_number):
    graph_number.mock(
        return_value=httpx.Response(
            401, json={"error": {"message": "Error validating access token: Session has expired", "code": 190}}
        )
    )
    with pytest.raises(CommandError, match=r"refused the credentials.*\(#190\) Error validating access token"):
        call_command("check_whatsapp", "aurora")


def test_check_whatsapp_says_when_meta_cannot_be_reached(graph_number):
    graph_number.mock(side_effect=httpx.ConnectError("Name or service not known"))
    with pytest.raises(CommandError, match="Could not reach the Graph API"):
        call_command("check_whatsapp", "aurora")


def test_check_whatsapp_without_a_channel(clinic):
    with pytest.raises(CommandError, match="has no WhatsApp channel"):
        call_command("check_whatsapp", "aurora")


@pytest.mark.django_db(transaction=True)
def test_simulate_patients_posts_signed_webhooks_to_a_running_server(live_server, clinic, capsys):
    WhatsAppChannel.objects.create(
        clinic=clinic,
        phone_number_id="demo-aurora",
        access_token="simulated",
        app_secret="s3cr3t-demo",
        verify_token="v",
        simulated=True,
    )
    call_command(
        "simulate_patients",
        "--url",
        live_server.url,
        "--clinic",
        "aurora",
        "--rate",
        "50",
        "--count",
        "6",
        "--patients",
        "4",
    )
    assert "6/6 accepted" in capsys.readouterr().out
    assert Message.objects.filter(clinic=clinic, direction="inbound").count() == 6
    assert Contact.objects.filter(clinic=clinic).count() == 4
    # One patient in four uses a WhatsApp username: known by user id, with no phone.
    assert Contact.objects.filter(clinic=clinic, phone="").exclude(whatsapp_user_id="").count() == 1


def test_simulate_patients_says_when_the_server_is_down(clinic):
    WhatsAppChannel.objects.create(
        clinic=clinic,
        phone_number_id="demo-aurora",
        access_token="simulated",
        app_secret="x",
        verify_token="v",
        simulated=True,
    )
    with pytest.raises(CommandError, match="Is the server running"):
        call_command("simulate_patients", "--url", "http://127.0.0.1:1", "--clinic", "aurora", "--count", "1")
