"""Routes of the webhooks, mounted at /webhooks/."""

from django.urls import path

from conversations.webhooks.n8n import N8nOpenView, N8nWebhookView
from conversations.webhooks.whatsapp import whatsapp_webhook

urlpatterns = [
    path("whatsapp/", whatsapp_webhook, name="webhook-whatsapp"),
    path("n8n/<slug:slug>/", N8nWebhookView.as_view(), name="webhook-n8n"),
    path("n8n/<slug:slug>/open/", N8nOpenView.as_view(), name="webhook-n8n-open"),
]
