"""The OpenAPI schema: it validates, it names every endpoint, its docs work offline, and fuzzing it
with schemathesis finds no server error."""

import re

import pytest
import schemathesis
from django.core.management import call_command
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.urls import URLPattern, get_resolver
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance

from conversations.actions.inbound import receive_inbound_message

schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application())
pytestmark = pytest.mark.usefixtures("simulated_number")  # replies go somewhere: the demo's kind of number

NOT_IN_SCHEMA = {"schema/", "docs/", "^.*$"}


def test_the_schema_validates_without_warnings(tmp_path):
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))
    assert "openapi:" in (tmp_path / "schema.yaml").read_text()


def test_every_endpoint_is_in_the_schema(client):
    paths = client.get("/api/schema/?format=json").json()["paths"]
    api = next(p for p in get_resolver().url_patterns if str(p.pattern) == "api/")
    routes = {str(p.pattern) for p in api.url_patterns if isinstance(p, URLPattern)} - NOT_IN_SCHEMA
    documented = {
        re.sub(r"\{(\w+)\}", r"<int:\1>", path.removeprefix("/api/")) for path in paths if path.startswith("/api/")
    }
    assert routes == documented
    assert "/webhooks/n8n/{slug}/" in paths


def test_the_docs_page_serves_its_own_assets(client):
    page = client.get("/api/docs/")
    assert page.status_code == 200
    assets = re.findall(r'src="([^"]+\.js)"', page.text)
    assert assets and all(a.startswith("/static/") for a in assets), "the docs must not depend on a CDN"


@pytest.fixture
def fuzz_target(db, jwt_client, make_member, clinic):
    """Real objects of the caller's clinic, for every id a path takes, and a clinic admin as the caller:
    generated bodies reach the code behind the 404 and the role checks (export, erasure, quick replies)."""
    from conversations.actions.messages import send_outbound_message
    from conversations.actions.replies import create_quick_reply
    from conversations.models import Role

    admin = make_member(clinic, Role.ADMIN)
    conversation = receive_inbound_message(clinic=clinic, phone="5511987654321", content="Oi").conversation
    sent = send_outbound_message(conversation=conversation, sender=admin, content="Olá").message
    reply = create_quick_reply(clinic=clinic, actor=admin, shortcut="ola", content="Olá, {{nome}}!")
    token = jwt_client(admin).tokens["access"]
    # Schemathesis calls Django's WSGI handler directly: as Django's test client does, keep the request
    # signals from closing the connection that holds the test's transaction (after the login above, whose
    # test client reconnects them when it is done).
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield {
        "headers": {"Authorization": f"Bearer {token}"},
        "path": {
            "conversation_id": conversation.pk,
            "contact_id": conversation.contact_id,
            "message_id": sent.pk,
            "reply_id": reply.pk,
            "slug": clinic.slug,  # the n8n webhook's
        },
    }
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_fuzzing_finds_no_server_error_and_answers_match_the_schema(case, fuzz_target):
    assert set(case.path_parameters or {}) <= set(fuzz_target["path"]), "a path id the fuzzing cannot fill"
    for name in case.path_parameters or {}:
        case.path_parameters[name] = fuzz_target["path"].get(name, case.path_parameters[name])
    case.call_and_validate(headers=fuzz_target["headers"], checks=[not_a_server_error, response_schema_conformance])
