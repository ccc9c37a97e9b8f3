"""Quick replies through the API: the clinic's admins write them, all its staff read them, every change is
audited and told to open screens, and another clinic's are neither seen nor touched."""

import pytest

from conversations.actions.replies import create_quick_reply
from conversations.models import AuditEvent, QuickReply, Role
from realtime.models import Event

URL = "/api/quick-replies/"


@pytest.fixture
def admin(clinic, make_member):
    return make_member(clinic, Role.ADMIN, first_name="Ana")


def test_an_admin_saves_and_every_member_reads_them(jwt_client, admin, member):
    response = jwt_client(admin).post(
        URL, {"shortcut": "/Endereco", "content": "A {{clinica}} fica na Rua A, 10."}, format="json"
    )
    assert response.status_code == 201, response.content
    reply = response.json()
    assert reply["shortcut"] == "endereco" and reply["content"] == "A {{clinica}} fica na Rua A, 10."
    assert jwt_client(member).get(URL).json() == [reply]
    assert AuditEvent.objects.filter(action="quick_reply.created", actor=admin).count() == 1
    assert Event.objects.filter(type="quick_replies:changed").count() == 1


def test_admins_change_and_remove_them(jwt_client, admin):
    api = jwt_client(admin)
    reply = api.post(URL, {"shortcut": "oi", "content": "Olá!"}, format="json").json()
    changed = api.patch(f"{URL}{reply['id']}/", {"content": "Olá, {{primeiro_nome}}!"}, format="json")
    assert changed.status_code == 200 and changed.json()["content"] == "Olá, {{primeiro_nome}}!"
    assert changed.json()["shortcut"] == "oi"
    assert api.delete(f"{URL}{reply['id']}/").status_code == 204
    assert not QuickReply.objects.exists()
    actions = list(AuditEvent.objects.filter(action__startswith="quick_reply.").values_list("action", flat=True))
    assert actions == ["quick_reply.created", "quick_reply.changed", "quick_reply.deleted"]


def test_other_staff_only_read(jwt_client, admin, member, clinic):
    reply = create_quick_reply(clinic=clinic, actor=admin, shortcut="oi", content="Olá!")
    api = jwt_client(member)
    assert api.post(URL, {"shortcut": "x", "content": "y"}, format="json").status_code == 403
    assert api.patch(f"{URL}{reply.pk}/", {"content": "mudado"}, format="json").status_code == 403
    assert api.delete(f"{URL}{reply.pk}/").status_code == 403
    assert QuickReply.objects.get().content == "Olá!"


@pytest.mark.parametrize(
    "body,field",
    [
        ({"shortcut": "com espaço", "content": "x"}, "shortcut"),
        ({"shortcut": "", "content": "x"}, "shortcut"),
        ({"shortcut": "ok", "content": "   "}, "content"),
        ({"shortcut": "ok", "content": 5}, "content"),
        ({"shortcut": "ok"}, "content"),
        ({"shortcut": "ok", "content": "x", "extra": 1}, "extra"),
    ],
)
def test_bad_replies_are_refused(jwt_client, admin, body, field):
    response = jwt_client(admin).post(URL, body, format="json")
    assert response.status_code == 400 and response.json()["field"] == field
    assert not QuickReply.objects.exists()


def test_a_shortcut_is_the_clinics_once(jwt_client, admin, clinic, other_clinic, make_member):
    create_quick_reply(clinic=clinic, actor=admin, shortcut="oi", content="Olá!")
    again = jwt_client(admin).post(URL, {"shortcut": "OI", "content": "De novo"}, format="json")
    assert again.status_code == 400 and again.json()["field"] == "shortcut"
    elsewhere = make_member(other_clinic, Role.ADMIN)
    assert jwt_client(elsewhere).post(URL, {"shortcut": "oi", "content": "Outra"}, format="json").status_code == 201


def test_another_clinics_replies_are_neither_seen_nor_touched(jwt_client, admin, clinic, outsider):
    reply = create_quick_reply(clinic=clinic, actor=admin, shortcut="sigilo", content="sigilo da clínica")
    api = jwt_client(outsider)
    assert api.get(URL).json() == []
    assert api.patch(f"{URL}{reply.pk}/", {"content": "invasão"}, format="json").status_code == 404
    assert api.delete(f"{URL}{reply.pk}/").status_code == 404
    assert QuickReply.objects.get().content == "sigilo da clínica"
