"""Webhooks in: WhatsApp's Cloud API notifications and the clinic's n8n automations."""
