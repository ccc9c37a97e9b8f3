"""The read cache: hits while nothing changes, never stale after a commit, per-user parts never shared,
and the API still answering when Redis cannot be reached."""

import pytest
from django.core.cache import cache

from conftest import free_port
from conversations import read_cache
from conversations.actions.conversations import set_conversation_status
from conversations.actions.inbound import receive_inbound_message
from conversations.actions.messages import send_outbound_message, update_message_status
from conversations.models import Role

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("simulated_number"),
]  # invalidation runs on commit, so tests must commit
LIST = "/api/conversations/"


@pytest.fixture(autouse=True)
def read_cache_on(settings):
    settings.READ_CACHE = True


@pytest.fixture
def conversation(clinic):
    return receive_inbound_message(
        clinic=clinic, phone="5511987654321", contact_name="Maria", content="Oi"
    ).conversation


def list_stats() -> dict:
    return read_cache.stats().get("conversation_list", {})


def test_a_second_read_is_a_hit(jwt_client, member, conversation):
    api = jwt_client(member)
    first, second = api.get(LIST).json(), api.get(LIST).json()
    assert first == second
    assert (list_stats()["misses"], list_stats()["hits"]) == (1, 1)


def test_the_next_read_after_any_write_shows_it(jwt_client, member, clinic, conversation):
    api = jwt_client(member)
    detail = f"{LIST}{conversation.pk}/"
    api.get(LIST), api.get(detail)

    api.post(f"{detail}messages/", {"content": "Resposta da clínica"}, format="json")
    assert api.get(LIST).json()["results"][0]["last_message"]["content"] == "Resposta da clínica"
    assert api.get(detail).json()["messages"][-1]["content"] == "Resposta da clínica"

    receive_inbound_message(clinic=clinic, phone="5511987654321", content="Chegou pelo WhatsApp")
    assert api.get(LIST).json()["results"][0]["last_message"]["content"] == "Chegou pelo WhatsApp"

    set_conversation_status(conversation=conversation, status="resolved", actor=None)
    assert api.get(detail).json()["conversation"]["status"] == "resolved"
    assert api.get(LIST, {"status": "open"}).json()["results"] == []


def test_unread_counts_are_not_shared_through_the_cache(jwt_client, member, clinic, make_member, conversation):
    colleague = make_member(clinic, Role.PROFESSIONAL)
    mine, theirs = jwt_client(member), jwt_client(colleague)
    assert mine.get(LIST).json()["results"][0]["unread_count"] == 1
    message_id = conversation.messages.get().pk
    mine.post(f"{LIST}{conversation.pk}/read/", {"message_id": message_id}, format="json")

    assert mine.get(LIST).json()["results"][0]["unread_count"] == 0
    assert theirs.get(LIST).json()["results"][0]["unread_count"] == 1
    assert list_stats()["hits"] >= 1, "the shared page must have come from the cache"
    assert mine.get(f"{LIST}{conversation.pk}/").json()["read_up_to"] == message_id
    assert theirs.get(f"{LIST}{conversation.pk}/").json()["read_up_to"] is None


def test_clinics_do_not_share_entries(jwt_client, member, outsider, other_clinic, conversation):
    receive_inbound_message(clinic=other_clinic, phone="5511900001111", contact_name="Outro", content="Oi")
    assert [r["contact"]["name"] for r in jwt_client(member).get(LIST).json()["results"]] == ["Maria"]
    assert [r["contact"]["name"] for r in jwt_client(outsider).get(LIST).json()["results"]] == ["Outro"]


def test_with_redis_unreachable_the_api_answers_from_the_database(settings, jwt_client, member, clinic, conversation):
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens on port 1
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2, "SOCKET_TIMEOUT": 0.2},
        }
    }
    api = jwt_client(member)  # the login's throttle cannot count either, and lets it through
    first = api.get(LIST)
    assert first.status_code == 200 and first.json()["results"][0]["contact"]["name"] == "Maria"
    receive_inbound_message(clinic=clinic, phone="5511987654321", content="Durante a queda")
    assert api.get(LIST).json()["results"][0]["last_message"]["content"] == "Durante a queda"
    assert api.get(f"{LIST}{conversation.pk}/").status_code == 200
    assert list_stats()["errors"] >= 1


def test_a_bump_lost_while_redis_was_down_is_applied_when_it_returns(
    jwt_client, member, clinic, conversation, monkeypatch
):
    api = jwt_client(member)
    api.get(LIST)  # cached

    def unreachable(*args, **kwargs):
        raise ConnectionError("redis is down")

    with monkeypatch.context() as down:
        down.setattr(cache, "incr", unreachable)
        down.setattr(cache, "set", unreachable)
        if hasattr(cache, "client"):  # django-redis: its connection is a Redis that does not answer
            import django_redis
            import redis

            dead = redis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.5)
            down.setattr(django_redis, "get_redis_connection", lambda alias="default": dead)
        receive_inbound_message(clinic=clinic, phone="5511987654321", content="Durante a queda")
    assert read_cache.list_scope(clinic.pk) in read_cache._pending_bumps
    monkeypatch.setattr(read_cache, "_down_until", 0.0)  # the back-off has run out: Redis is back
    assert api.get(LIST).json()["results"][0]["last_message"]["content"] == "Durante a queda"
    assert list_stats()["bypassed"] == 0 and not read_cache._pending_bumps


def test_metrics_are_for_clinic_admins_and_support(jwt_client, member, clinic, make_member, django_user_model, client):
    admin = make_member(clinic, Role.ADMIN)
    assert jwt_client(member).get("/api/metrics/").status_code == 403
    jwt_client(member).get(LIST)
    body = jwt_client(admin).get("/api/metrics/").json()
    assert body["read_cache_enabled"] is True
    assert set(body["caches"]["conversation_list"]) >= {"hits", "misses", "errors", "avg_lookup_ms", "hit_ratio"}
    support = django_user_model.objects.create_superuser("suporte", "s@example.com", "senha-forte-123")
    client.force_login(support)
    assert client.get("/api/metrics/").status_code == 200


def detail_stats() -> dict:
    return read_cache.stats().get("conversation_detail", {})


def test_a_status_tick_refreshes_its_conversation_but_leaves_the_list_and_other_details_cached(
    jwt_client, member, clinic, conversation
):
    other = receive_inbound_message(clinic=clinic, phone="5511922220002", content="Outra").conversation
    api = jwt_client(member)
    sent = send_outbound_message(conversation=conversation, sender=member, content="Olá").message
    for url in (LIST, f"{LIST}{conversation.pk}/", f"{LIST}{other.pk}/"):
        api.get(url)
    before_list, before_detail = dict(list_stats()), dict(detail_stats())

    update_message_status(message=sent, status="delivered")
    assert api.get(LIST).status_code == 200
    assert list_stats()["hits"] == before_list["hits"] + 1, "the list does not show ticks: still cached"
    assert api.get(f"{LIST}{other.pk}/").status_code == 200
    assert detail_stats()["hits"] == before_detail["hits"] + 1, "another conversation's detail: still cached"
    shown = api.get(f"{LIST}{conversation.pk}/").json()["messages"][-1]
    assert shown["status"] == "delivered", "never stale"
    assert detail_stats()["misses"] == before_detail["misses"] + 1


def test_a_renamed_contact_shows_in_the_list_and_in_each_of_its_conversations(jwt_client, member, conversation):
    from conversations.actions.support import change_contact

    api = jwt_client(member)
    api.get(LIST), api.get(f"{LIST}{conversation.pk}/")
    contact = conversation.contact
    contact.name = "Maria Souza Lima"
    change_contact(contact, actor=member, editable=["name"])
    assert api.get(LIST).json()["results"][0]["contact"]["name"] == "Maria Souza Lima"
    assert api.get(f"{LIST}{conversation.pk}/").json()["conversation"]["contact"]["name"] == "Maria Souza Lima"


def test_an_action_refreshes_the_detail_only(jwt_client, member, conversation):
    from conversations.actions.conversations import add_conversation_action

    api = jwt_client(member)
    api.get(LIST), api.get(f"{LIST}{conversation.pk}/")
    hits = list_stats()["hits"]
    add_conversation_action(conversation=conversation, action_type="appointment_created")
    api.get(LIST)
    assert list_stats()["hits"] == hits + 1
    assert [a["action_type"] for a in api.get(f"{LIST}{conversation.pk}/").json()["actions"]] == ["appointment_created"]


def stored_keys() -> int:
    client = getattr(cache, "client", None)
    if hasattr(client, "get_client"):  # Redis
        return len(client.get_client().keys(cache.make_and_validate_key("*")))
    return len(cache._cache)


def test_a_cached_detail_answers_only_its_own_clinic(jwt_client, member, outsider, other_clinic, conversation):
    """The detail is looked up in the cache before the database: the entry's key carries the clinic that
    stored it, so another clinic's warm entry is never found, and an id nobody may see stores nothing."""
    theirs = receive_inbound_message(clinic=other_clinic, phone="5511933330003", content="Deles").conversation
    their_api, our_api = jwt_client(outsider), jwt_client(member)
    assert [their_api.get(f"{LIST}{theirs.pk}/").status_code for _ in range(2)] == [200, 200]
    assert detail_stats()["hits"] == 1
    our_api.get(LIST)  # our throttle's counter and our list's entry exist from here
    keys = stored_keys()
    for _ in range(2):
        refused = our_api.get(f"{LIST}{theirs.pk}/")
        assert refused.status_code == 404 and "Deles" not in refused.content.decode()
        assert our_api.get(f"{LIST}987654321/").status_code == 404
    assert stored_keys() == keys, "nothing stored for a conversation the caller cannot see"
    assert detail_stats()["hits"] == 1

    ours = our_api.get(f"{LIST}{conversation.pk}/")
    again = our_api.get(f"{LIST}{conversation.pk}/")
    assert ours.json() == again.json() and detail_stats()["hits"] == 2


def test_a_warm_detail_reads_only_the_caller_s_read_marker(jwt_client, member, conversation, django_assert_num_queries):
    api = jwt_client(member)
    api.get(LIST), api.get(f"{LIST}{conversation.pk}/")  # the token's checks and the detail remembered
    with django_assert_num_queries(2) as queries:  # the read marker, and the audit record of the reading
        body = api.get(f"{LIST}{conversation.pk}/").json()
    assert sorted(q["sql"].split()[0] for q in queries) == ["INSERT", "SELECT"]  # the audit; the read marker
    assert body["read_up_to"] is None and body["conversation"]["id"] == conversation.pk
    message = body["messages"][-1]["id"]
    assert api.post(f"{LIST}{conversation.pk}/read/", {"message_id": message}, format="json").status_code == 204
    assert api.get(f"{LIST}{conversation.pk}/").json()["read_up_to"] == message, "the caller's part is never cached"


def unread_stats() -> dict:
    return read_cache.stats().get("unread_counts", {})


def test_unread_counts_are_cached_per_reader_and_follow_reads_and_new_messages(
    jwt_client, member, make_member, clinic, conversation
):
    nurse = make_member(clinic)
    api, colleague = jwt_client(member), jwt_client(nurse)

    def unread(client) -> int:
        return client.get(LIST).json()["results"][0]["unread_count"]

    assert [unread(api), unread(api), unread(colleague)] == [1, 1, 1]
    assert unread_stats()["hits"] == 1, "the second read of the same reader; never another reader's"
    newest = api.get(f"{LIST}{conversation.pk}/").json()["messages"][-1]["id"]
    assert api.post(f"{LIST}{conversation.pk}/read/", {"message_id": newest}, format="json").status_code == 204
    assert [unread(api), unread(colleague)] == [0, 1], "a read is the reader's alone, and shows at once"
    receive_inbound_message(clinic=clinic, phone="5511987654321", content="Mais uma")
    assert [unread(api), unread(colleague)] == [1, 2]
