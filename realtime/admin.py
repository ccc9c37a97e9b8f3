"""The event log in the admin, read-only: support uses it to see what reached a clinic and when."""

from django.contrib import admin

from conversations.admin import ReadOnlyAdmin
from realtime.models import Event


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = ["seq", "type", "clinic", "conversation_id", "created_at"]
    list_filter = ["type", "clinic"]
    search_fields = ["=conversation_id", "=seq"]
    date_hierarchy = "created_at"
    show_full_result_count = False
