"""Search over message text: Portuguese stemming and accents folded on PostgreSQL, ranked, paged, scoped to
the caller's clinic; a plain fallback elsewhere."""

import pytest

from conversations.actions.inbound import receive_inbound_message
from conversations.models import AuditEvent

URL = "/api/search/"


def write(clinic, phone: str, *texts: str) -> list[int]:
    return [receive_inbound_message(clinic=clinic, phone=phone, content=text).message.pk for text in texts]


def hits(api, q: str, **extra) -> list[int]:
    response = api.get(URL, {"q": q, **extra})
    assert response.status_code == 200, response.content
    return [row["message_id"] for row in response.json()["results"]]


@pytest.mark.postgres
def test_stemmed_and_accent_folded_words_are_found(jwt_client, member, clinic):
    consultas, exames, other = write(
        clinic, "5511987654321", "Quero marcar duas Consultas", "Trouxe os exâmes de sangue", "Bom dia"
    )
    api = jwt_client(member)
    assert hits(api, "consulta") == [consultas]
    assert hits(api, "exame") == [exames]
    assert hits(api, "EXAMES sangue") == [exames]
    assert hits(api, "consulta -marcar") == [], "websearch syntax: minus excludes"
    row = api.get(URL, {"q": "exame"}).json()["results"][0]
    assert row["message_id"] == exames and row["snippet"] == "Trouxe os exâmes de sangue"
    assert set(row) == {"conversation_id", "message_id", "snippet", "created_at"}


@pytest.mark.postgres
def test_results_are_ranked_then_newest_first_and_paged(jwt_client, member, clinic):
    once, twice, newer_once = write(
        clinic,
        "5511987654321",
        "o exame ficou pronto",
        "exame de sangue e exame de urina: exames prontos",
        "resultado do exame",
    )
    api = jwt_client(member)
    assert hits(api, "exame") == [twice, newer_once, once]
    first = api.get(URL, {"q": "exame", "limit": 2}).json()
    assert [r["message_id"] for r in first["results"]] == [twice, newer_once] and first["next_cursor"]
    rest = api.get(URL, {"q": "exame", "limit": 2, "cursor": first["next_cursor"]}).json()
    assert [r["message_id"] for r in rest["results"]] == [once] and rest["next_cursor"] is None


def test_search_is_scoped_to_the_callers_clinic_and_audited_without_the_words(
    jwt_client, member, clinic, other_clinic, outsider
):
    (ours,) = write(clinic, "5511987654321", "Resultado da biópsia sigiloso")
    write(other_clinic, "5511987654321", "Outra clínica: biópsia")
    assert hits(jwt_client(member), "biópsia") == [ours]
    assert ours not in hits(jwt_client(outsider), "biópsia")
    audit = AuditEvent.objects.filter(action="messages.searched", actor=member).get()
    assert audit.detail == {"found": 1} and "biópsia" not in str(audit.detail)


def test_the_plain_fallback_and_bad_queries(jwt_client, member, clinic):
    (found,) = write(clinic, "5511987654321", "Preciso remarcar a consulta")
    api = jwt_client(member)
    assert hits(api, "remarcar consulta") == [found]
    for bad in ({"q": "a"}, {}, {"q": "x" * 201}, {"q": "consulta", "cursor": "nada"}, {"q": "ok", "limit": 0}):
        response = api.get(URL, bad)
        assert response.status_code == 400, (bad, response.content)


@pytest.mark.postgres
def test_matches_older_than_the_newest_messages_are_found_too(jwt_client, member, clinic, monkeypatch):
    from conversations import search

    monkeypatch.setattr(search, "NEWEST", 3)  # the newest-first read sees only the last three messages
    old_hit, *_ = write(clinic, "5511987654321", "exame antigo", "nada", "nada de novo", "mais nada")
    (new_hit,) = write(clinic, "5511987654321", "exame novo")
    assert set(hits(jwt_client(member), "exame")) == {old_hit, new_hit}
