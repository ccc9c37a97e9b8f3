"""What the API and the event frames send: one serializer per shape, shared by both."""

from django.urls import reverse
from rest_framework import serializers


class KindField(serializers.ChoiceField):
    """A constant that tells one kind of timeline item from another ("message", "note")."""

    def __init__(self, kind: str, **kwargs):
        self.kind = kind
        super().__init__(choices=[kind], source="*", read_only=True, **kwargs)

    def to_representation(self, value) -> str:
        return self.kind


class UserRefOut(serializers.Serializer):
    id = serializers.IntegerField(source="pk")
    name = serializers.SerializerMethodField()

    def get_name(self, user) -> str:
        return user.get_full_name() or user.get_username()


class ContactRefOut(serializers.Serializer):
    id = serializers.IntegerField(source="pk")
    name = serializers.CharField()
    display_name = serializers.CharField(help_text="The name to show: the clinic's, else WhatsApp's profile name")
    phone = serializers.SerializerMethodField(help_text="E.164 digits, e.g. 5511987654321; null when WhatsApp hid it")
    phone_display = serializers.CharField(help_text='"+55 11 98765-4321", or "sem telefone"')
    whatsapp_user_id = serializers.CharField(help_text="WhatsApp's business-scoped user id (BSUID), or empty")
    whatsapp_username = serializers.CharField(help_text="The patient's WhatsApp username, or empty")

    def get_phone(self, contact) -> str | None:
        return contact.phone or None


class ContactOut(ContactRefOut):
    whatsapp_id = serializers.CharField(
        help_text="The number as WhatsApp knows it (its wa_id, which may lack a Brazilian mobile's ninth digit): "
        "where replies go; empty until the patient writes on WhatsApp"
    )
    whatsapp_parent_user_id = serializers.CharField()
    profile_name = serializers.CharField(help_text="The name the patient set on WhatsApp")
    email = serializers.CharField()
    notes = serializers.CharField(help_text="Staff's observations about the patient (Observações)")
    status = serializers.CharField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class AttachmentOut(serializers.Serializer):
    id = serializers.IntegerField(source="pk")
    file_name = serializers.CharField()
    content_type = serializers.CharField()
    size = serializers.IntegerField()
    url = serializers.SerializerMethodField()

    def get_url(self, attachment) -> str | None:
        """Served only to staff of the clinic (`/media/attachments/<id>/`), never from storage directly."""
        return reverse("attachment", args=[attachment.pk]) if attachment.file else None


class MessageOut(serializers.Serializer):
    kind = KindField("message", help_text='Always "message" (a note says "note")')
    id = serializers.IntegerField(source="pk")
    conversation_id = serializers.IntegerField()
    direction = serializers.CharField()
    sender_type = serializers.CharField()
    sender = UserRefOut(allow_null=True)
    message_type = serializers.CharField()
    content = serializers.CharField()
    metadata = serializers.JSONField()
    status = serializers.CharField()
    error = serializers.CharField()
    external_id = serializers.CharField(allow_null=True, help_text="The provider's id, always a string")
    client_id = serializers.UUIDField(allow_null=True)
    created_at = serializers.DateTimeField(help_text="When it happened, UTC")
    status_changed_at = serializers.DateTimeField(allow_null=True)
    attachments = AttachmentOut(many=True)


class LabelOut(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    color = serializers.CharField(help_text="#rrggbb")


class ConversationOut(serializers.Serializer):
    id = serializers.IntegerField(source="pk")
    status = serializers.CharField()
    channel = serializers.CharField()
    contact = ContactRefOut()
    assignee = UserRefOut(allow_null=True)
    answered_by = serializers.ChoiceField(
        choices=["assistant", "staff"], help_text="Who answers the patient: the n8n assistant, or staff (it paused)"
    )
    labels = LabelOut(many=True)
    snoozed_until = serializers.DateTimeField(
        allow_null=True, help_text="Snoozed: out of the open list until then, or until the patient writes"
    )
    awaiting_since = serializers.DateTimeField(
        allow_null=True,
        help_text="Since when the patient waits for the clinic's answer (their first message after its last reply)",
    )
    last_message_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class LastMessageOut(serializers.Serializer):
    content = serializers.CharField()
    message_type = serializers.CharField()
    direction = serializers.CharField()
    sender_type = serializers.CharField(help_text="patient, professional, ai or system")
    sender_id = serializers.IntegerField(allow_null=True, help_text="The staff member who sent it, if any")


class ConversationRowOut(ConversationOut):
    """A row of the inbox list; `unread_count` is the caller's own."""

    last_message = serializers.SerializerMethodField()
    activity_at = serializers.DateTimeField(help_text="last_message_at, or created_at without messages")
    unread_count = serializers.IntegerField(required=False)

    def get_last_message(self, conversation) -> LastMessageOut(allow_null=True):
        if conversation.last_message_type is None:
            return None
        return {
            "content": conversation.last_message_content,
            "message_type": conversation.last_message_type,
            "direction": conversation.last_message_direction,
            "sender_type": conversation.last_message_sender_type,
            "sender_id": conversation.last_message_sender_id,
        }


class ActionOut(serializers.Serializer):
    id = serializers.IntegerField(source="pk")
    conversation_id = serializers.IntegerField()
    action_type = serializers.CharField()
    action_data = serializers.JSONField()
    created_at = serializers.DateTimeField()


class NoteOut(serializers.Serializer):
    kind = KindField("note", help_text='Always "note": never a message to the patient')
    id = serializers.IntegerField()
    conversation_id = serializers.IntegerField()
    author = UserRefOut(allow_null=True)
    suggestion = serializers.BooleanField(
        help_text="The assistant's answer to a conversation staff have taken: kept, never sent; author is null"
    )
    content = serializers.CharField()
    mentions = UserRefOut(many=True, help_text="The colleagues the note names (@name); they are told")
    created_at = serializers.DateTimeField()


class NotePageOut(serializers.Serializer):
    results = NoteOut(many=True, help_text="Oldest first")
    has_more = serializers.BooleanField(help_text="Older notes exist (before=)")


class QuickReplyOut(serializers.Serializer):
    id = serializers.IntegerField()
    shortcut = serializers.CharField()
    content = serializers.CharField()
    buttons = serializers.ListField(child=serializers.CharField(), help_text="Reply buttons it asks with")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class SearchHitOut(serializers.Serializer):
    conversation_id = serializers.IntegerField()
    message_id = serializers.IntegerField()
    snippet = serializers.CharField(help_text="The text around the words found")
    created_at = serializers.DateTimeField()


class SearchPageOut(serializers.Serializer):
    results = SearchHitOut(many=True, help_text="Best first: relevance, then recency")
    next_cursor = serializers.CharField(allow_null=True)


class TemplateOut(serializers.Serializer):
    name = serializers.CharField()
    language = serializers.CharField(help_text="e.g. pt_BR")
    category = serializers.CharField(help_text="UTILITY, MARKETING or AUTHENTICATION")
    body = serializers.CharField(help_text="The text, with its variables as {{1}} or {{name}}")
    variables = serializers.ListField(child=serializers.CharField(), help_text="Their names, in order")
    header = serializers.DictField(
        allow_null=True, help_text='{"format": "TEXT" | "IMAGE" | "DOCUMENT" | "VIDEO", "text": …} or null'
    )
    footer = serializers.CharField()
    buttons = serializers.ListField(child=serializers.DictField(), help_text='{"type", "text", "url"} as approved')
    header_variables = serializers.ListField(child=serializers.CharField(), help_text="A text header's variables")
    header_media = serializers.CharField(allow_null=True, help_text="The kind of file a media header takes")
    button_parameters = serializers.ListField(
        child=serializers.DictField(), help_text='Buttons that take a value: {"index", "type": "url" | "quick_reply"}'
    )


class TemplateListOut(serializers.Serializer):
    source = serializers.ChoiceField(choices=["whatsapp", "simulator"])
    results = TemplateOut(many=True)


class ClinicOut(serializers.Serializer):
    id = serializers.IntegerField(source="clinic.pk")
    name = serializers.CharField(source="clinic.name")
    slug = serializers.CharField(source="clinic.slug")
    timezone = serializers.CharField(source="clinic.timezone")
    role = serializers.CharField()
    active = serializers.BooleanField()


class ConversationDetailOut(serializers.Serializer):
    conversation = ConversationOut()
    answered_by = serializers.ChoiceField(
        choices=["assistant", "staff"],
        help_text="The conversation's answered_by: check it before the assistant replies",
    )
    reply_window_ends_at = serializers.DateTimeField(
        allow_null=True,
        help_text="When WhatsApp's 24-hour window for free text closes (null: the patient never wrote); after it, "
        "only a template",
    )
    messages = MessageOut(many=True, help_text="The latest 50, oldest first")
    has_older = serializers.BooleanField()
    actions = ActionOut(many=True)
    notes = NoteOut(many=True, help_text="Internal notes from the first message shown on, oldest first")
    read_up_to = serializers.IntegerField(allow_null=True, help_text="The caller's last read message id")


class MessagePageOut(serializers.Serializer):
    results = MessageOut(many=True, help_text="Oldest first")
    has_more = serializers.BooleanField(help_text="More older (before=) or newer (after=) messages exist")


class ConversationPageOut(serializers.Serializer):
    results = ConversationRowOut(many=True)
    next_cursor = serializers.CharField(allow_null=True)


class ContactPageOut(serializers.Serializer):
    results = ContactOut(many=True)
    next_cursor = serializers.CharField(allow_null=True)


class TokenPairOut(serializers.Serializer):
    access = serializers.CharField()
    refresh = serializers.CharField()
    clinic = ClinicOut(required=False)


class ErrorOut(serializers.Serializer):
    code = serializers.CharField()
    detail = serializers.CharField()
    field = serializers.CharField(required=False)
    errors = serializers.DictField(required=False)


class OpenOut(serializers.Serializer):
    open = serializers.BooleanField()
    next_change_at = serializers.DateTimeField(
        allow_null=True, help_text="When the clinic next opens or closes; null: never"
    )
