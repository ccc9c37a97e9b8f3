"""The login page, choosing a clinic, and the inbox skeleton, as staff use them in a browser."""

from datetime import UTC, datetime
from urllib.parse import quote

import pytest
from django.test import Client
from django.urls import reverse

from conversations.access import SESSION_KEY
from conversations.actions.inbound import receive_inbound_message
from conversations.models import Clinic, Membership, Role
from conversations.templatetags.clinic_time import format_clinic_time


@pytest.fixture
def inbox_of(clinic, other_clinic):
    receive_inbound_message(clinic=clinic, phone="5511911110001", contact_name="Maria Aurora", content="Oi Aurora")
    receive_inbound_message(
        clinic=other_clinic, phone="5511911110002", contact_name="Pedro Boreal", content="Oi Boreal"
    )


def test_the_login_page_is_in_portuguese(client):
    page = client.get(reverse("login"))
    assert page.status_code == 200
    assert 'lang="pt-BR"' in page.text and "Entrar" in page.text and "Senha" in page.text


def test_a_wrong_password_says_so(client, member):
    page = client.post(reverse("login"), {"username": member.username, "password": "errada"})
    assert page.status_code == 200 and "Usuário ou senha incorretos" in page.text


@pytest.fixture
def login_limits(settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "auth": "3/hour"},
    }
    settings.LOGIN_FAILURES_PER_USER = "4/15min"


def test_the_browser_login_is_throttled_per_address(client, member, login_limits):
    """Whatever X-Forwarded-For says is the server's to believe or not (taskmed.serve, TRUSTED_PROXIES): that
    is tested through a real server, realtime/tests/test_served_limits.py."""
    wrong = {"username": "nobody", "password": "errada"}
    pages = [client.post(reverse("login"), wrong) for _ in range(4)]
    assert [p.status_code for p in pages] == [200, 200, 200, 429]
    assert "Muitas tentativas de entrar" in pages[-1].text
    right = {"username": member.username, "password": "senha-de-teste-123"}
    assert client.post(reverse("login"), right).status_code == 429, "refused unread, even the right password"
    assert Client(REMOTE_ADDR="10.9.9.9").post(reverse("login"), right).status_code == 302


def test_failures_count_against_the_user_name_at_every_door(client, member, login_limits, settings):
    from rest_framework.test import APIClient

    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "auth": "100/min"},
    }
    wrong = {"username": member.username, "password": "errada"}
    APIClient(REMOTE_ADDR="10.0.0.1").post("/api/auth/token/", wrong, format="json")
    APIClient(REMOTE_ADDR="10.0.0.1").post("/api/auth/token/", wrong, format="json")
    Client(REMOTE_ADDR="10.0.0.1").post(reverse("login"), wrong)
    Client(REMOTE_ADDR="10.0.0.1").post(reverse("admin:login"), wrong)
    right = {"username": member.username, "password": "senha-de-teste-123"}
    page = Client(REMOTE_ADDR="10.0.0.1").post(reverse("login"), right)
    assert page.status_code == 429 and "Muitas tentativas" in page.text
    admin_page = Client(REMOTE_ADDR="10.0.0.1").post(reverse("admin:login"), right)
    assert "Muitas tentativas" in admin_page.text
    assert "_auth_user_id" not in admin_page.wsgi_request.session
    assert Client(REMOTE_ADDR="10.0.0.2").post(reverse("login"), right).status_code == 302, "elsewhere: allowed"


def test_the_inbox_needs_login(client):
    response = client.get(reverse("inbox"))
    assert response.status_code == 302 and response.url.startswith(reverse("login"))


def test_a_member_of_one_clinic_lands_in_its_inbox(client, member, inbox_of):
    response = client.post(
        reverse("login"), {"username": member.username, "password": "senha-de-teste-123"}, follow=True
    )
    assert response.status_code == 200
    assert "Maria Aurora" in response.text and "Oi Aurora" in response.text
    assert "Pedro Boreal" not in response.text and "Oi Boreal" not in response.text
    assert "Clínica Aurora" in response.text


def test_a_member_of_several_clinics_chooses_one(client, member, clinic, other_clinic, inbox_of):
    Membership.objects.create(user=member, clinic=other_clinic, role=Role.PROFESSIONAL)
    client.force_login(member)
    response = client.get(reverse("inbox"))
    assert response.status_code == 302 and response.url == f"{reverse('choose_clinic')}?next=%2Finbox%2F"
    page = client.get(reverse("choose_clinic"))
    assert "Clínica Aurora" in page.text and "Clínica Boreal" in page.text

    response = client.post(reverse("choose_clinic"), {"clinic_id": other_clinic.pk}, follow=True)
    assert "Pedro Boreal" in response.text and "Maria Aurora" not in response.text


def test_a_notifications_link_to_another_of_ones_clinics_goes_there_through_the_choice(
    client, member, clinic, other_clinic, outsider
):
    """A push opens /inbox/<id>/?clinic=<id>: a member of that clinic working in another is asked to choose
    it and lands on the conversation; anyone else gets the same 404 as for any conversation not theirs."""
    Membership.objects.create(user=member, clinic=other_clinic, role=Role.PROFESSIONAL)
    theirs = receive_inbound_message(clinic=other_clinic, phone="5511955550005", content="Oi").conversation
    client.force_login(member)
    client.post(reverse("choose_clinic"), {"clinic_id": clinic.pk})  # working in Aurora
    link = f"/inbox/{theirs.pk}/?clinic={other_clinic.pk}"
    response = client.get(link)
    assert response.status_code == 302 and response.url == f"{reverse('choose_clinic')}?next={quote(link, safe='')}"
    page = client.get(response.url).text
    assert f'name="next" value="{link}"' in page.replace("&amp;", "&")
    chosen = client.post(reverse("choose_clinic"), {"clinic_id": other_clinic.pk, "next": link})
    assert chosen.status_code == 302 and chosen.url == link
    assert client.get(link).status_code == 200
    # Elsewhere than this site, or a clinic not one's own: refused.
    away = client.post(reverse("choose_clinic"), {"clinic_id": clinic.pk, "next": "https://evil.example/x"})
    assert away.url == reverse("inbox")
    ours = receive_inbound_message(clinic=clinic, phone="5511955550006", content="Oi").conversation
    client.force_login(outsider)  # of Boreal only: Aurora's conversation does not exist for them
    assert client.get(f"/inbox/{ours.pk}/?clinic={clinic.pk}").status_code == 404


@pytest.mark.parametrize("posted", ["other", "nonsense", "missing"])
def test_a_clinic_the_user_does_not_belong_to_cannot_be_chosen(client, member, other_clinic, posted):
    client.force_login(member)
    data = {"other": {"clinic_id": other_clinic.pk}, "nonsense": {"clinic_id": "x"}, "missing": {}}[posted]
    response = client.post(reverse("choose_clinic"), data)
    assert response.status_code == 400 and "Escolha uma das clínicas" in response.text
    assert client.session.get(SESSION_KEY) is None


def test_a_removed_membership_loses_the_inbox_at_once(client, member, clinic, inbox_of):
    client.force_login(member)
    assert "Maria Aurora" in client.get(reverse("inbox")).text
    Membership.objects.filter(user=member).delete()
    response = client.get(reverse("inbox"), follow=True)
    assert "Maria Aurora" not in response.text
    assert response.status_code == 403 and "Sem clínica" in response.text


def test_the_inbox_filters_by_status_and_shows_unread_counts(client, member, clinic, inbox_of):
    client.force_login(member)
    receive_inbound_message(clinic=clinic, phone="5511911110001", content="Mais uma")
    page = client.get(reverse("inbox"))
    assert 'aria-label="2 não lidas"' in page.text
    assert "Maria Aurora" not in client.get(reverse("inbox") + "?status=resolved").text


def test_a_patient_without_a_phone_is_shown_by_name_and_sem_telefone(client, member, clinic):
    receive_inbound_message(
        clinic=clinic, whatsapp_user_id="BR.13491208655302741918", whatsapp_username="realsheenanelson", content="Oi"
    )
    receive_inbound_message(clinic=clinic, phone="5511911110001", contact_name="Maria Aurora", content="Oi")
    client.force_login(member)
    page = client.get(reverse("inbox")).text
    assert "@realsheenanelson" in page and "sem telefone" in page and "+55 11 91111-0001" in page
    assert "+None" not in page and 'class="phone">+</span>' not in page


def test_logout_ends_the_session(client, member):
    client.force_login(member)
    client.post(reverse("logout"))
    assert client.get(reverse("inbox")).status_code == 302


@pytest.mark.parametrize(
    "tz,when,now,shown",
    [
        (
            "America/Sao_Paulo",
            datetime(2026, 6, 24, 17, 30, tzinfo=UTC),
            datetime(2026, 6, 24, 20, 0, tzinfo=UTC),
            "14:30",
        ),
        # 01:30 UTC on the 25th is still the 24th in São Paulo: "today" is the clinic's day, not UTC's.
        (
            "America/Sao_Paulo",
            datetime(2026, 6, 25, 1, 30, tzinfo=UTC),
            datetime(2026, 6, 25, 2, 0, tzinfo=UTC),
            "22:30",
        ),
        (
            "America/Sao_Paulo",
            datetime(2026, 6, 24, 17, 30, tzinfo=UTC),
            datetime(2026, 6, 26, 12, 0, tzinfo=UTC),
            "24 de jun",
        ),
        (
            "America/Manaus",
            datetime(2026, 6, 25, 2, 0, tzinfo=UTC),
            datetime(2026, 6, 25, 12, 0, tzinfo=UTC),
            "24 de jun",
        ),
        (
            "America/Sao_Paulo",
            datetime(2025, 12, 3, 15, 0, tzinfo=UTC),
            datetime(2026, 6, 26, 12, 0, tzinfo=UTC),
            "3 de dez de 2025",
        ),
    ],
)
def test_times_are_shown_once_in_the_clinic_time_zone(tz, when, now, shown):
    assert format_clinic_time(when, Clinic(timezone=tz), now=now) == shown
