"""API authentication: tokens with clinic and role, rotation, logout, and losing access at once."""

from datetime import timedelta

import jwt
import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

from conversations.api.throttling import UserThrottle
from conversations.models import Membership, Role

pytestmark = pytest.mark.usefixtures("simulated_number")  # replies go somewhere: the demo's kind of number

LIST = "/api/conversations/"
ADMINS_ONLY = "/api/socket/stats/"


def claims(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def test_a_token_carries_the_clinic_and_the_role(jwt_client, member, clinic):
    client = jwt_client(member)
    access = claims(client.tokens["access"])
    assert (access["clinic_id"], access["role"], access["user_id"]) == (clinic.pk, "receptionist", str(member.pk))
    assert client.tokens["clinic"] == {
        "id": clinic.pk,
        "name": "Clínica Aurora",
        "slug": "aurora",
        "timezone": "America/Sao_Paulo",
        "role": "receptionist",
        "active": True,
    }
    assert client.get(LIST).status_code == 200


def test_the_access_token_is_short_lived():
    assert settings.SIMPLE_JWT["ACCESS_TOKEN_LIFETIME"] <= timedelta(minutes=15)


def test_a_user_of_several_clinics_must_choose(member, other_clinic):
    Membership.objects.create(user=member, clinic=other_clinic, role=Role.ADMIN)
    response = APIClient().post(
        "/api/auth/token/", {"username": member.username, "password": "senha-de-teste-123"}, format="json"
    )
    assert response.status_code == 400 and response.json()["field"] == "clinic_id"


def test_each_clinic_gets_its_own_role(jwt_client, member, other_clinic):
    Membership.objects.create(user=member, clinic=other_clinic, role=Role.ADMIN)
    assert claims(jwt_client(member, other_clinic).tokens["access"])["role"] == "admin"


def test_a_clinic_the_user_does_not_belong_to_is_refused(member, other_clinic):
    body = {"username": member.username, "password": "senha-de-teste-123", "clinic_id": other_clinic.pk}
    response = APIClient().post("/api/auth/token/", body, format="json")
    assert response.status_code == 403 and response.json()["code"] == "not_a_member"


@pytest.mark.parametrize(
    "body,status,code",
    [
        ({"username": "nobody", "password": "x"}, 401, "invalid_credentials"),
        ({"username": "staff1", "password": "wrong"}, 401, "invalid_credentials"),
        ({"username": "staff1"}, 400, "required"),
        ({"username": "staff1", "password": "senha-de-teste-123", "extra": 1}, 400, "unknown_field"),
        ({"username": 7, "password": "senha-de-teste-123"}, 400, "invalid"),
    ],
)
def test_bad_logins_are_refused_with_a_code(member, body, status, code):
    response = APIClient().post("/api/auth/token/", body, format="json")
    assert response.status_code == status and response.json()["code"] == code


def test_refresh_rotates_and_the_old_refresh_token_is_dead(jwt_client, member):
    client = jwt_client(member)
    first = APIClient().post("/api/auth/token/refresh/", {"refresh": client.tokens["refresh"]}, format="json")
    assert first.status_code == 200 and set(first.json()) == {"access", "refresh"}
    assert claims(first.json()["access"])["clinic_id"] == client.tokens["clinic"]["id"]
    again = APIClient().post("/api/auth/token/refresh/", {"refresh": client.tokens["refresh"]}, format="json")
    assert again.status_code == 401 and again.json()["code"] == "token_not_valid"
    newer = APIClient().post("/api/auth/token/refresh/", {"refresh": first.json()["refresh"]}, format="json")
    assert newer.status_code == 200


def test_logout_ends_access_and_refresh_at_once(jwt_client, member):
    client = jwt_client(member)
    assert client.post("/api/auth/logout/", {"refresh": client.tokens["refresh"]}, format="json").status_code == 204
    response = client.get(LIST)
    assert response.status_code == 401 and response.json()["code"] == "session_revoked"
    refresh = APIClient().post("/api/auth/token/refresh/", {"refresh": client.tokens["refresh"]}, format="json")
    assert refresh.status_code == 401


def test_logout_of_one_session_leaves_the_others(jwt_client, member):
    phone, laptop = jwt_client(member), jwt_client(member)
    phone.post("/api/auth/logout/", {}, format="json")
    assert phone.get(LIST).status_code == 401 and laptop.get(LIST).status_code == 200


def test_a_removed_membership_loses_access_with_a_valid_token(jwt_client, member):
    client = jwt_client(member)
    Membership.objects.filter(user=member).delete()
    response = client.get(LIST)
    assert response.status_code == 401 and response.json()["code"] == "membership_revoked"
    refresh = APIClient().post("/api/auth/token/refresh/", {"refresh": client.tokens["refresh"]}, format="json")
    assert refresh.status_code == 401


def test_a_deactivated_user_loses_access_with_a_valid_token(jwt_client, member):
    client = jwt_client(member)
    member.is_active = False
    member.save()
    assert client.get(LIST).status_code == 401
    assert (
        APIClient().post("/api/auth/token/refresh/", {"refresh": client.tokens["refresh"]}, format="json").status_code
        == 401
    )


def test_access_lost_after_the_token_was_used_is_lost_at_once(jwt_client, member, make_member, clinic):
    """A token's database checks are remembered between requests; any change of access forgets them."""
    nurse, admin = make_member(clinic), make_member(clinic, Role.ADMIN)
    removed, deactivated, demoted = jwt_client(member), jwt_client(nurse), jwt_client(admin)
    for client in (removed, deactivated, demoted):
        assert client.get(LIST).status_code == 200  # remembered from here on
    assert demoted.get(ADMINS_ONLY).status_code == 200

    Membership.objects.filter(user=member).delete()
    nurse.is_active = False
    nurse.save()
    membership = Membership.objects.get(user=admin)
    membership.role = Role.RECEPTIONIST
    membership.save()

    assert removed.get(LIST).json()["code"] == "membership_revoked"
    assert deactivated.get(LIST).status_code == 401
    assert demoted.get(ADMINS_ONLY).status_code == 403 and demoted.get(LIST).status_code == 200


def change_password_in_the_admin(user, new: str) -> None:
    from django.test import Client

    support = type(user).objects.create_superuser("suporte", password="senha-de-suporte-123")
    admin = Client()
    admin.force_login(support)
    form = {"password1": new, "password2": new, "usable_password": "true"}
    assert admin.post(f"/admin/auth/user/{user.pk}/password/", form).status_code == 302


def change_password_with_the_command(user, new: str, monkeypatch) -> None:
    import getpass

    from django.core.management import call_command

    monkeypatch.setattr(getpass, "getpass", lambda prompt="": new)  # what the operator types at the terminal
    call_command("changepassword", user.username, stdout=__import__("io").StringIO())


def change_password_by_a_reset(user, new: str) -> None:
    from django.contrib.auth.forms import SetPasswordForm

    form = SetPasswordForm(user, {"new_password1": new, "new_password2": new})  # what a reset link's page saves
    assert form.is_valid(), form.errors
    form.save()


@pytest.mark.parametrize("path", ["admin", "changepassword", "reset"])
def test_a_password_changed_by_any_path_ends_every_api_session_at_once(jwt_client, member, path, monkeypatch):
    phone, laptop = jwt_client(member), jwt_client(member)
    assert phone.get(LIST).status_code == 200  # its checks remembered from here on
    new = "uma-senha-nova-e-longa-456"
    if path == "admin":
        change_password_in_the_admin(member, new)
    elif path == "changepassword":
        change_password_with_the_command(member, new, monkeypatch)
    else:
        change_password_by_a_reset(member, new)

    for client in (phone, laptop):
        refused = client.get(LIST)
        assert refused.status_code == 401 and refused.json()["code"] == "session_revoked"
        again = APIClient().post("/api/auth/token/refresh/", {"refresh": client.tokens["refresh"]}, format="json")
        assert again.status_code == 401
    relogin = APIClient().post("/api/auth/token/", {"username": member.username, "password": new}, format="json")
    assert relogin.status_code == 200, "the new password opens a new session"


def test_a_refresh_token_lives_from_the_login_however_often_it_is_refreshed(jwt_client, member):
    from rest_framework_simplejwt.tokens import RefreshToken

    login = RefreshToken(jwt_client(member).tokens["refresh"])
    login.set_exp(lifetime=timedelta(days=3))  # as if logged in four of the seven days ago
    login.outstand()
    refresh = str(login)
    for _ in range(3):
        answer = APIClient().post("/api/auth/token/refresh/", {"refresh": refresh}, format="json").json()
        refresh = answer["refresh"]
        assert claims(refresh)["exp"] == login["exp"], "a rotation never moves the session's end"
        assert claims(answer["access"])["exp"] <= login["exp"]
    assert claims(refresh)["jti"] != login["jti"]


def test_an_access_token_ends_with_its_session(jwt_client, member, settings):
    """Near the session's end a refresh gives an access token that ends with it, not minutes later."""
    from rest_framework_simplejwt.tokens import RefreshToken

    refresh = RefreshToken(jwt_client(member).tokens["refresh"])
    refresh.set_exp(lifetime=timedelta(seconds=60))  # a session a minute from its end (signed: the server's key)
    refresh.outstand()
    answer = APIClient().post("/api/auth/token/refresh/", {"refresh": str(refresh)}, format="json").json()
    assert claims(answer["access"])["exp"] == claims(answer["refresh"])["exp"] == refresh["exp"]


def test_a_membership_removed_while_its_token_was_checked_is_not_remembered_as_access(jwt_client, member, monkeypatch):
    """The removal commits (and every process hears of it) between the request's lookup and its remembering
    it: the next request must not pass on what that lookup read."""
    from conversations.api import auth

    client = jwt_client(member)
    original = auth.membership_for

    def read_then_removed(user, clinic_id):
        found = original(user, clinic_id)
        Membership.objects.filter(user=user, clinic_id=clinic_id).delete()  # committed: its signal runs
        return found

    monkeypatch.setattr(auth, "membership_for", read_then_removed)
    assert client.get(LIST).status_code == 200  # this one had read the membership before it went
    monkeypatch.setattr(auth, "membership_for", original)
    refused = client.get(LIST)
    assert refused.status_code == 401 and refused.json()["code"] == "membership_revoked"


def test_a_deleted_users_refresh_token_is_a_401_not_a_crash(jwt_client, member):
    client = jwt_client(member)
    member.delete()
    assert (
        APIClient().post("/api/auth/token/refresh/", {"refresh": client.tokens["refresh"]}, format="json").status_code
        == 401
    )


def test_expired_and_forged_tokens_are_refused(jwt_client, member):
    client = jwt_client(member)
    expired = AccessToken(client.tokens["access"])
    expired.set_exp(lifetime=-timedelta(seconds=1))
    forged = jwt.encode(
        {**claims(client.tokens["access"]), "clinic_id": 999},
        "not-the-signing-key-of-this-installation",
        algorithm="HS256",
    )
    for token in (str(expired), forged, "garbage"):
        response = APIClient().get(LIST, HTTP_AUTHORIZATION=f"Bearer {token}")
        assert response.status_code == 401 and response.json()["code"] == "token_not_valid"


def test_no_credentials_is_a_401_with_a_bearer_challenge():
    response = APIClient().get(LIST)
    assert response.status_code == 401 and response["WWW-Authenticate"].startswith("Bearer")


def test_the_browser_session_works_with_csrf_on_writes(client, member, clinic):
    from conversations.actions.inbound import receive_inbound_message

    conversation = receive_inbound_message(clinic=clinic, phone="5511987654321", content="Oi").conversation
    browser = APIClient(enforce_csrf_checks=True)
    browser.force_login(member)
    assert browser.get(LIST).status_code == 403  # no active clinic chosen yet
    browser.get("/inbox/")  # the inbox activates the user's only clinic
    assert browser.get(LIST).status_code == 200
    url = f"/api/conversations/{conversation.pk}/messages/"
    refused = browser.post(url, {"content": "Oi"}, format="json")
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    browser.get("/accounts/login/")
    token = browser.cookies["csrftoken"].value
    assert browser.post(url, {"content": "Oi"}, format="json", HTTP_X_CSRFTOKEN=token).status_code == 201


@pytest.fixture
def login_limits(settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "auth": "3/hour"},
    }
    settings.LOGIN_FAILURES_PER_USER = "4/15min"


def test_the_token_endpoint_is_throttled_per_address(member, login_limits):
    body = {"username": "nobody", "password": "wrong"}
    codes = [APIClient().post("/api/auth/token/", body, format="json").status_code for _ in range(4)]
    assert codes == [401, 401, 401, 429]
    other_ip = APIClient(REMOTE_ADDR="10.1.2.3").post("/api/auth/token/", body, format="json")
    assert other_ip.status_code == 401


def test_a_made_up_forwarded_for_does_not_escape_the_address_throttle(member, login_limits):
    body = {"username": "nobody", "password": "wrong"}
    codes = [
        APIClient().post("/api/auth/token/", body, format="json", HTTP_X_FORWARDED_FOR=f"203.0.113.{n}").status_code
        for n in range(4)
    ]
    assert codes == [401, 401, 401, 429], "a client's own X-Forwarded-For is not its address"


def test_failed_logins_lock_the_user_name_from_that_address(member, make_member, clinic, login_limits, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "auth": "100/min"},
    }
    wrong = {"username": member.username, "password": "wrong"}
    guesser = APIClient(REMOTE_ADDR="10.0.0.66")
    for _ in range(4):
        assert guesser.post("/api/auth/token/", wrong, format="json").status_code == 401
    right = {"username": member.username, "password": "senha-de-teste-123"}
    locked = guesser.post("/api/auth/token/", right, format="json")
    assert locked.status_code == 429 and locked.json()["code"] == "throttled"
    assert 0 < int(locked["Retry-After"]) <= 15 * 60
    at_the_clinic = APIClient(REMOTE_ADDR="10.0.1.1").post("/api/auth/token/", right, format="json")
    assert at_the_clinic.status_code == 200, "a guesser elsewhere does not lock the user out"
    colleague = make_member(clinic)
    other = {"username": colleague.username, "password": "senha-de-teste-123"}
    assert guesser.post("/api/auth/token/", other, format="json").status_code == 200


def test_failures_spread_over_many_addresses_lock_the_name_everywhere(member, login_limits):
    wrong = {"username": member.username, "password": "wrong"}
    for n in range(40):  # ten times LOGIN_FAILURES_PER_USER, one guess from each address
        assert APIClient(REMOTE_ADDR=f"10.1.{n}.1").post("/api/auth/token/", wrong, format="json").status_code == 401
    right = {"username": member.username, "password": "senha-de-teste-123"}
    assert APIClient(REMOTE_ADDR="10.9.9.9").post("/api/auth/token/", right, format="json").status_code == 429


def test_any_user_name_is_counted_and_locked_with_keys_every_cache_accepts(db, login_limits, settings):
    """Whatever is typed as the user name (spaces, accents, up to the longest name allowed) is counted
    under a key that every cache backend accepts (no CacheKeyWarning: memcached would refuse such keys),
    and locks that name after the failures allowed."""
    import warnings

    from django.core.cache.backends.base import CacheKeyWarning

    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "auth": "100/min"},
    }
    wrong = {"username": " Ana Maria da Conceição " + "ç" * 120, "password": "wrong"}
    guesser = APIClient(REMOTE_ADDR="10.0.0.67")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        codes = [guesser.post("/api/auth/token/", wrong, format="json").status_code for _ in range(5)]
    assert codes == [401, 401, 401, 401, 429]
    assert [w for w in seen if issubclass(w.category, CacheKeyWarning)] == []


def test_token_refreshes_are_not_counted_as_logins(jwt_client, member, login_limits):
    refresh = jwt_client(member).tokens["refresh"]
    for _ in range(5):  # more than the logins' 3 a minute
        answer = APIClient().post("/api/auth/token/refresh/", {"refresh": refresh}, format="json")
        assert answer.status_code == 200
        refresh = answer.json()["refresh"]


@pytest.mark.parametrize("cache", ["local", pytest.param("redis", marks=pytest.mark.redis)])
def test_each_user_is_throttled_on_their_own_with_the_wait_told(
    jwt_client, member, make_member, clinic, cache, monkeypatch, settings
):
    if cache == "local":
        settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    monkeypatch.setattr(UserThrottle, "THROTTLE_RATES", {"user": "3/hour"})
    busy, colleague = jwt_client(member), jwt_client(make_member(clinic))
    codes = [busy.get(LIST).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    refused = busy.get(LIST)
    assert refused.json()["code"] == "throttled" and 0 < int(refused["Retry-After"]) <= 3600
    assert colleague.get(LIST).status_code == 200, "another user's requests are counted apart"


def test_the_throttle_lets_requests_through_when_its_cache_is_away(jwt_client, member, monkeypatch, settings):
    monkeypatch.setattr(UserThrottle, "THROTTLE_RATES", {"user": "1/hour"})
    api = jwt_client(member)
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens on port 1
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2, "SOCKET_TIMEOUT": 0.2},
        }
    }
    assert [api.get(LIST).status_code for _ in range(3)] == [200, 200, 200]


def test_last_login_is_recorded(jwt_client, member):
    jwt_client(member)
    member.refresh_from_db()
    assert member.last_login is not None and timezone.now() - member.last_login < timedelta(minutes=1)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_of_two_refreshes_racing_with_one_token_only_one_succeeds(jwt_client, member):
    """Another refresh of the same token holds its blacklist entry, uncommitted, while this one runs: when
    it commits, this one must fail rather than hand out a second pair of tokens."""
    import threading

    import psycopg
    from rest_framework_simplejwt.token_blacklist.models import OutstandingToken

    refresh = jwt_client(member).tokens["refresh"]
    outstanding = OutstandingToken.objects.get(jti=claims(refresh)["jti"])
    db = settings.DATABASES["default"]
    other = psycopg.connect(host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432, user=db["USER"], dbname=db["NAME"])
    other.execute(
        "INSERT INTO token_blacklist_blacklistedtoken (token_id, blacklisted_at) VALUES (%s, now())", [outstanding.pk]
    )  # the concurrent refresh, not yet committed
    answers = []

    def refresh_it():
        try:
            answers.append(APIClient().post("/api/auth/token/refresh/", {"refresh": refresh}, format="json"))
        finally:
            connection.close()  # this thread's own

    racing = threading.Thread(target=refresh_it)
    racing.start()
    racing.join(1.0)
    assert racing.is_alive(), "the second refresh waits on the first one's entry"
    other.commit()
    other.close()
    racing.join(10)
    assert answers[0].status_code == 401 and answers[0].json()["code"] == "token_not_valid"
