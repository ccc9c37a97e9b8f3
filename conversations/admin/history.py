"""What happened, readable and never edited: conversations, messages, the audit trail, the event log."""

from django.contrib import admin, messages
from django.db.models import OuterRef, QuerySet, Subquery
from django.http import HttpRequest

from conversations.actions.conversations import set_conversation_status
from conversations.admin.base import PhoneSearch, ReadOnlyAdmin
from conversations.api.views.base import client_ip
from conversations.models import (
    AuditEvent,
    Clinic,
    Conversation,
    ConversationAction,
    DeliveryAttempt,
    Message,
    MessageAttachment,
    PendingStatus,
    ReadMarker,
)
from realtime.models import Event


@admin.action(description="Marcar como resolvidas")
def resolve_conversations(modeladmin, request: HttpRequest, queryset: QuerySet[Conversation]) -> None:
    changed = sum(
        set_conversation_status(
            conversation=c,
            status=Conversation.Status.RESOLVED,
            actor=request.user,
            ip=client_ip(request),
            by_support=True,
        )[1]
        for c in queryset
    )
    modeladmin.message_user(request, f"{changed} conversa(s) resolvida(s).", messages.SUCCESS)


@admin.register(Conversation)
class ConversationAdmin(PhoneSearch, ReadOnlyAdmin):
    phone_fields = ("contact__phone", "contact__whatsapp_id")
    list_display = ["id", "contact", "clinic", "status", "assignee", "last_message_at", "created_at"]
    list_filter = ["status", "channel", "clinic"]
    search_fields = ["contact__name", "contact__profile_name", "contact__phone", "contact__whatsapp_username"]
    list_select_related = ["contact", "clinic", "assignee"]
    date_hierarchy = "last_message_at"
    actions = [resolve_conversations]

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        # The status actions need it; the form itself shows every field read-only.
        return obj is None and super(ReadOnlyAdmin, self).has_change_permission(request, obj)

    def get_readonly_fields(self, request: HttpRequest, obj=None) -> list[str]:
        return [f.name for f in self.model._meta.fields]


class AttachmentInline(admin.TabularInline):
    model = MessageAttachment
    extra = 0
    can_delete = False
    readonly_fields = ["file", "file_name", "content_type", "size"]

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(Message)
class MessageAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "conversation",
        "direction",
        "sender_type",
        "message_type",
        "status",
        "short_content",
        "created_at",
    ]
    list_filter = ["direction", "sender_type", "message_type", "status", "clinic"]
    search_fields = ["content", "external_id"]
    list_select_related = ["conversation__contact"]
    raw_id_fields = ["conversation", "sender"]
    date_hierarchy = "created_at"
    show_full_result_count = False  # counting millions of messages on every page is slow
    inlines = [AttachmentInline]

    @admin.display(description="conteúdo")
    def short_content(self, obj: Message) -> str:
        return obj.content[:80]


@admin.register(MessageAttachment)
class MessageAttachmentAdmin(ReadOnlyAdmin):
    list_display = ["file_name", "content_type", "size", "message"]
    search_fields = ["file_name"]
    raw_id_fields = ["message"]


@admin.register(ConversationAction)
class ConversationActionAdmin(ReadOnlyAdmin):
    list_display = ["action_type", "conversation", "clinic", "created_at"]
    list_filter = ["action_type", "clinic"]
    search_fields = ["action_type", "conversation__contact__name"]
    raw_id_fields = ["conversation"]


@admin.register(ReadMarker)
class ReadMarkerAdmin(ReadOnlyAdmin):
    list_display = ["user", "conversation", "last_read_message", "updated_at"]
    search_fields = ["user__username"]
    raw_id_fields = ["user", "conversation", "last_read_message"]


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    """Who did what, when and from where: read here, never changed (the database refuses it too)."""

    list_display = ["at", "clinic_label", "actor_name", "action", "object_type", "object_id", "ip"]
    list_filter = ["action", "clinic"]
    search_fields = ["actor_name", "object_id", "ip"]
    date_hierarchy = "at"
    fields = ["at", "clinic_label", "actor_id", "actor_name", "action", "object_type", "object_id", "detail", "ip"]
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[AuditEvent]:
        # The clinic's name in the same query, by a subquery rather than a join: a record whose clinic is
        # gone (the trail outlives it) must still be listed.
        name = Clinic.objects.filter(pk=OuterRef("clinic_id")).values("name")[:1]
        return super().get_queryset(request).annotate(clinic_name=Subquery(name))

    @admin.display(description="clínica")
    def clinic_label(self, obj: AuditEvent) -> str:
        if obj.clinic_id is None:
            return "— (instalação: contas e permissões)"
        return obj.clinic_name or f"#{obj.clinic_id} (removida)"


@admin.register(DeliveryAttempt)
class DeliveryAttemptAdmin(ReadOnlyAdmin):
    """Why a message failed or was retried: every call to the provider, with its outcome."""

    list_display = ["message", "number", "provider", "outcome", "started_at", "finished_at", "detail"]
    list_filter = ["outcome", "provider"]
    search_fields = ["=message__id", "detail"]
    raw_id_fields = ["message"]


@admin.register(PendingStatus)
class PendingStatusAdmin(ReadOnlyAdmin):
    list_display = ["external_id", "status", "clinic", "happened_at", "received_at"]
    list_filter = ["status", "clinic"]
    search_fields = ["external_id"]


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    """The event log: what reached a clinic's screens, and when."""

    list_display = ["seq", "type", "clinic", "conversation_id", "created_at"]
    list_filter = ["type", "clinic"]
    search_fields = ["=conversation_id", "=seq"]
    date_hierarchy = "created_at"
    show_full_result_count = False
