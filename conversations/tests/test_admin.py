"""The support admin: every model browsable and searchable, history read-only, secrets never shown."""

import pytest
from django.contrib import admin
from django.urls import reverse

from conversations.actions.demo import seed_demo
from conversations.actions.messages import receive_inbound_message
from conversations.models import Contact, IntegrationToken, Message, WhatsAppChannel
from realtime.models import Event

SECRET_TOKEN = "EAAGm0PX4ZCpsBAKZBqZAqzVZCs1Q2" * 3
APP_SECRET = "f3c1a9e0b7d24c58a1e6c9d0b2a4e8f1"


@pytest.fixture
def support(django_user_model):
    return django_user_model.objects.create_superuser("suporte", "suporte@example.com", "senha-forte-123")


@pytest.fixture
def channel(clinic):
    return WhatsAppChannel.objects.create(
        clinic=clinic,
        phone_number_id="106540352242922",
        display_phone_number="+55 11 3000-1000",
        access_token=SECRET_TOKEN,
        app_secret=APP_SECRET,
        verify_token="verifica-isso-123",
    )


def admin_url(model, view="changelist", *args):
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def test_every_registered_model_lists_and_searches(client, support, channel):
    seed_demo(scale=1)
    client.force_login(support)
    for model, model_admin in admin.site._registry.items():
        response = client.get(admin_url(model))
        assert response.status_code == 200, model
        if model_admin.search_fields:
            assert client.get(admin_url(model), {"q": "Maria"}).status_code == 200, model


def test_messages_are_found_by_content_and_contacts_by_name_or_phone(client, support):
    seed_demo(scale=1)
    client.force_login(support)
    message = Message.objects.filter(content__icontains="Unimed").first()
    assert str(message.pk) in client.get(admin_url(Message), {"q": "Unimed"}).text
    contact = message.conversation.contact
    assert contact.name in client.get(admin_url(Contact), {"q": contact.phone}).text


@pytest.mark.parametrize("model", [Message, Event])
def test_history_is_read_only(client, support, model, clinic):
    receive_inbound_message(clinic=clinic, phone="5511987654321", content="Oi")
    client.force_login(support)
    obj = model.objects.first()
    assert client.get(admin_url(model, "add")).status_code == 403
    page = client.get(admin_url(model, "change", obj.pk))
    assert page.status_code == 200 and 'name="_save"' not in page.text
    assert client.post(admin_url(model, "delete", obj.pk), {"post": "yes"}).status_code == 403
    assert model.objects.filter(pk=obj.pk).exists()


def test_channel_secrets_are_never_displayed(client, support, channel):
    client.force_login(support)
    for page in (client.get(admin_url(WhatsAppChannel)), client.get(admin_url(WhatsAppChannel, "change", channel.pk))):
        assert page.status_code == 200
        assert SECRET_TOKEN not in page.text and APP_SECRET not in page.text and "verifica-isso-123" not in page.text
    assert "••••••" + APP_SECRET[-4:] in client.get(admin_url(WhatsAppChannel)).text


def test_saving_a_channel_with_blank_secrets_keeps_them(client, support, channel, clinic):
    client.force_login(support)
    response = client.post(
        admin_url(WhatsAppChannel, "change", channel.pk),
        {
            "clinic": clinic.pk,
            "phone_number_id": channel.phone_number_id,
            "display_phone_number": "+55 11 3000-2000",
            "access_token": "",
            "app_secret": "",
            "verify_token": "",
        },
    )
    assert response.status_code == 302
    channel.refresh_from_db()
    assert (channel.display_phone_number, channel.access_token, channel.app_secret) == (
        "+55 11 3000-2000",
        SECRET_TOKEN,
        APP_SECRET,
    )


def test_a_new_integration_token_is_shown_once_and_only_its_hash_is_kept(client, support, clinic):
    client.force_login(support)
    response = client.post(
        admin_url(IntegrationToken, "add"), {"clinic": clinic.pk, "name": "n8n produção"}, follow=True
    )
    token = IntegrationToken.objects.get()
    shown = next(m.message for m in response.context["messages"]).rsplit(" ", 1)[-1]
    assert shown.startswith("tmk_") and IntegrationToken.hash_token(shown) == token.token_hash
    assert shown not in client.get(admin_url(IntegrationToken)).text
    assert shown not in client.get(admin_url(IntegrationToken, "change", token.pk)).text
