"""A user of clinic B can do nothing to clinic A: every endpoint and method answers 404 and changes nothing."""

import pytest
from django.urls import URLPattern, get_resolver
from rest_framework.test import APIClient

from conversations.actions.conversations import add_conversation_action
from conversations.actions.inbound import receive_inbound_message
from conversations.actions.notes import add_note
from conversations.actions.replies import create_quick_reply
from conversations.models import (
    AuditEvent,
    Contact,
    Conversation,
    ConversationAction,
    Message,
    Note,
    QuickReply,
    ReadMarker,
    Role,
)
from realtime.models import Event

# (method, path template, body): every clinic-scoped object route of the API.
OBJECT_ROUTES = [
    ("get", "/api/conversations/{conversation}/", None),
    ("patch", "/api/conversations/{conversation}/", {"status": "resolved"}),
    ("get", "/api/conversations/{conversation}/messages/", None),
    ("post", "/api/conversations/{conversation}/messages/", {"content": "invasão"}),
    ("post", "/api/conversations/{conversation}/messages/{message}/resend/", {}),
    ("post", "/api/conversations/{conversation}/messages/{message}/reaction/", {"emoji": "👍"}),
    ("post", "/api/conversations/{conversation}/read/", {"message_id": "{message}"}),
    ("post", "/api/conversations/{conversation}/unread/", {}),
    ("get", "/api/conversations/{conversation}/actions/", None),
    ("post", "/api/conversations/{conversation}/actions/", {"action_type": "note"}),
    ("get", "/api/conversations/{conversation}/notes/", None),
    ("post", "/api/conversations/{conversation}/notes/", {"content": "invasão"}),
    ("patch", "/api/quick-replies/{reply}/", {"content": "invasão"}),
    ("delete", "/api/quick-replies/{reply}/", None),
    ("get", "/api/contacts/{contact}/", None),
    ("get", "/api/contacts/{contact}/export/", None),
    ("post", "/api/contacts/{contact}/erase/", {"confirm": True}),
    ("patch", "/api/contacts/{contact}/", {"name": "invasão"}),
    ("get", "/api/contacts/{contact}/merge/", None),
    ("post", "/api/contacts/{contact}/merge/", {"merge_id": "{contact}", "confirm": True}),
]
LIST_ROUTES = [
    "/api/conversations/",
    "/api/contacts/",
    "/api/clinics/",
    "/api/presence/",
    "/api/templates/",
    "/api/quick-replies/",
    "/api/labels/",
    "/api/search/?q=sigilo",
    "/api/clinic/hours/",
    "/api/clinic/open/",
    "/api/reports/",
]
NOT_CLINIC_DATA = {
    "auth/token/",
    "auth/token/refresh/",
    "auth/logout/",
    "schema/",
    "docs/",
    "metrics/",  # counts only, a clinic admin's own clinic's (below)
    "socket/stats/",  # counts only, a clinic admin's own clinic's (realtime/tests/test_http.py)
    "health/",
    "health/details/",  # the installation's state, operators only (realtime/tests/test_http.py)
    "push/",  # the server's public VAPID key, the same for everyone
    "push/subscription/",  # the caller's own device only (test_push.py: another clinic's touches nothing)
    "^.*$",
}


@pytest.fixture
def clinic_a(clinic, member, make_member):
    conversation = receive_inbound_message(
        clinic=clinic, phone="5511987654321", contact_name="Paciente A", content="sigilo"
    ).conversation
    add_conversation_action(conversation=conversation, action_type="appointment_created")
    add_note(conversation=conversation, author=member, content="sigilo da equipe")
    admin = make_member(clinic, Role.ADMIN)
    reply = create_quick_reply(clinic=clinic, actor=admin, shortcut="sigilo", content="sigilo")
    return {
        "conversation": conversation.pk,
        "contact": conversation.contact_id,
        "message": conversation.messages.get().pk,
        "reply": reply.pk,
    }


def snapshot() -> dict:
    models = (Conversation, Contact, Message, ConversationAction, Note, QuickReply, ReadMarker, Event, AuditEvent)
    return {m.__name__: sorted(m.objects.values_list("pk", flat=True)) for m in models} | {
        "statuses": sorted(Conversation.objects.values_list("pk", "status"))
    }


def fill(template, ids: dict):
    if isinstance(template, dict):
        return {k: fill(v, ids) for k, v in template.items()}
    if isinstance(template, str) and template.startswith("{") and template.endswith("}") and template[1:-1] in ids:
        return ids[template[1:-1]]
    return template.format(**ids) if isinstance(template, str) else template


@pytest.mark.parametrize("method,path,body", OBJECT_ROUTES)
def test_another_clinics_objects_are_not_found_and_unchanged(jwt_client, outsider, clinic_a, method, path, body):
    api = jwt_client(outsider)
    before = snapshot()
    response = getattr(api, method)(fill(path, clinic_a), fill(body, clinic_a), format="json")
    assert response.status_code == 404, response.content
    assert "sigilo" not in response.text and "Paciente A" not in response.text
    assert snapshot() == before


@pytest.mark.parametrize("path", LIST_ROUTES)
def test_another_clinics_lists_show_nothing_of_it(jwt_client, outsider, clinic_a, path):
    response = jwt_client(outsider).get(path)
    assert response.status_code == 200
    assert "sigilo" not in response.text and "Paciente A" not in response.text and "aurora" not in response.text


def test_a_message_id_of_another_clinic_cannot_be_marked_read_in_ones_own(jwt_client, outsider, other_clinic, clinic_a):
    own = receive_inbound_message(clinic=other_clinic, phone="5511911112222", content="meu").conversation
    response = jwt_client(outsider).post(
        f"/api/conversations/{own.pk}/read/", {"message_id": clinic_a["message"]}, format="json"
    )
    assert response.status_code == 400 and not ReadMarker.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_clinic_admins_metrics_count_only_their_own_clinics_reads_and_messages(
    jwt_client, clinic, other_clinic, make_member, whatsapp_channel, whatsapp_post, settings, django_user_model
):
    settings.READ_CACHE = True
    theirs, ours = make_member(clinic, Role.ADMIN), make_member(other_clinic, Role.ADMIN)
    assert whatsapp_post("text").status_code == 200  # a patient of clinic A writes
    for _ in range(3):
        jwt_client(theirs).get("/api/conversations/")  # A's staff read A's list
    figures = jwt_client(ours).get("/api/metrics/").json()
    assert sum(figures["whatsapp_messages_stored_by"].values()) == 0, "none of clinic A's messages"
    assert "conversation_list" not in figures["caches"], "none of A's reads (clinic B read nothing)"
    own = jwt_client(theirs).get("/api/metrics/").json()
    assert sum(own["whatsapp_messages_stored_by"].values()) == 1
    assert own["caches"]["conversation_list"]["hits"] + own["caches"]["conversation_list"]["misses"] == 3
    support = django_user_model.objects.create_superuser("suporte", password="senha-de-suporte-123")
    everyone = APIClient()
    everyone.force_login(support)
    assert sum(everyone.get("/api/metrics/").json()["whatsapp_messages_stored_by"].values()) >= 1


def test_the_walk_covers_every_api_route():
    api = next(p for p in get_resolver().url_patterns if str(p.pattern) == "api/")
    routes = {str(p.pattern) for p in api.url_patterns if isinstance(p, URLPattern)}
    walked = {
        path.removeprefix("/api/")
        .replace("{conversation}", "<int:conversation_id>")
        .replace("{contact}", "<int:contact_id>")
        .replace("{message}", "<int:message_id>")
        .replace("{reply}", "<int:reply_id>")
        for _, path, _ in OBJECT_ROUTES
    }
    walked |= {path.removeprefix("/api/").split("?")[0] for path in LIST_ROUTES}
    assert routes - NOT_CLINIC_DATA == walked
