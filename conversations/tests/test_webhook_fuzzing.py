"""Generated payloads at both webhooks (hypothesis): whatever arrives, signed or authenticated, the answer
is never a 500, and nothing is stored half-way (a message is there whole, with its conversation, or not)."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from conftest import APP_SECRET, whatsapp_payload
from conversations.actions.integrations import create_integration_token
from conversations.models import Conversation, Message
from conversations.webhooks.whatsapp import signature_of

# Any JSON value, with the strings that break naive code: NUL, markup, an RTL override, huge numbers.
texts = st.one_of(st.text(max_size=40), st.sampled_from(["\x00", "<script>alert(1)</script>", "\u202e", "9" * 40]))
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    texts,
)
values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4), max_leaves=12
)

FIELDS = ["from", "id", "timestamp", "type", "text", "image", "context", "referral", "interactive", "user_id"]


def message_like():
    """A message record where each known field is either kept from a real one or replaced by anything."""
    real = whatsapp_payload("text")["entry"][0]["changes"][0]["value"]["messages"][0]
    return st.fixed_dictionaries({}, optional={name: values for name in FIELDS}).map(lambda junk: {**real, **junk})


def whole() -> bool:
    """Every stored message has its conversation and patient; every conversation has a patient."""
    return all(m.conversation.contact_id for m in Message.objects.select_related("conversation")) and all(
        c.contact_id for c in Conversation.objects.all()
    )


pytestmark = pytest.mark.django_db


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(messages=st.lists(message_like(), max_size=3), statuses=st.lists(values, max_size=2), value_junk=values)
def test_generated_whatsapp_notifications_never_make_a_500(whatsapp_channel, client, messages, statuses, value_junk):
    payload = whatsapp_payload("text")
    value = payload["entry"][0]["changes"][0]["value"]
    value["messages"], value["statuses"] = messages, statuses
    if isinstance(value_junk, dict):
        value.update({k: v for k, v in value_junk.items() if k not in ("metadata",)})
    body = json.dumps(payload).encode()
    response = client.post(
        "/webhooks/whatsapp/",
        body,
        content_type="application/json",
        HTTP_X_HUB_SIGNATURE_256=signature_of(body, APP_SECRET),
    )
    assert response.status_code in (200, 400), response.content
    assert whole()


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    body=st.dictionaries(
        st.sampled_from(
            [
                "phone",
                "name",
                "content",
                "sender_type",
                "message_type",
                "external_id",
                "timestamp",
                "action_type",
                "action_data",
                "whatsapp_user_id",
            ]
        ),
        values,
    )
)
def test_generated_n8n_bodies_never_make_a_500(clinic, body):
    token = create_integration_token(clinic=clinic, name="fuzz")[1]
    client = APIClient(HTTP_AUTHORIZATION=f"Bearer {token}")
    before = Message.objects.count()
    response = client.post(f"/webhooks/n8n/{clinic.slug}/", body, format="json")
    assert response.status_code in (200, 201, 400, 404), response.content
    if response.status_code >= 400:
        assert Message.objects.count() == before, "a refused body stores nothing"
    assert whole()
