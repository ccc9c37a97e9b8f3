"""What the API accepts: one serializer per request shape, validated once at the edge."""

import json

from rest_framework import serializers

from conversations.actions.conversations import ACTION_TYPE
from conversations.actions.labels import COLOR
from conversations.actions.messages import MAX_TEXT_LENGTH
from conversations.actions.notes import MAX_NOTE_CHARS
from conversations.actions.patients import MAX_NAME_CHARS, MAX_NOTES_CHARS
from conversations.actions.replies import MAX_REPLY_CHARS
from conversations.models import Conversation
from conversations.storable import unstorable


class StrictCharField(serializers.CharField):
    """A string and only a string: 5 or true in a JSON body is a wrong type, not text."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


def refuse_unstorable(value) -> None:
    if unstorable(value):
        raise serializers.ValidationError("Holds a NUL character or a lone surrogate, which cannot be stored.")


class StorableDictField(serializers.DictField):
    """A JSON object whose every string, keys included, the database can store."""

    def __init__(self, **kwargs):
        super().__init__(validators=[refuse_unstorable], **kwargs)


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer and only that: "5", 5.5 and true are wrong types."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictSerializer(serializers.Serializer):
    """Refuses keys it does not know, so a typo is a 400 naming it rather than silently ignored."""

    def to_internal_value(self, data):
        if hasattr(data, "keys"):  # a JSON object or a form
            unknown = sorted(set(data.keys()) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({key: ["Unknown field."] for key in unknown}, code="unknown_field")
        return super().to_internal_value(data)


class TokenIn(StrictSerializer):
    username = StrictCharField(max_length=150)
    password = StrictCharField(max_length=256, trim_whitespace=False)
    clinic_id = StrictIntegerField(required=False, min_value=1, help_text="Needed when you work for several clinics")


class RefreshIn(StrictSerializer):
    refresh = StrictCharField(max_length=2048)


class LogoutIn(StrictSerializer):
    refresh = StrictCharField(max_length=2048, required=False, help_text="Also blacklisted when given")


class ConversationListQuery(serializers.Serializer):
    status = serializers.ChoiceField(choices=Conversation.Status.values, required=False)
    assignee = serializers.RegexField(
        r"^(me|none|[1-9][0-9]{0,18})$", required=False, help_text="me, none or a user id"
    )
    q = serializers.CharField(max_length=100, required=False, help_text="Part of the contact's name or phone")
    label = serializers.IntegerField(min_value=1, max_value=2**63 - 1, required=False, help_text="A label's id")
    snoozed = serializers.BooleanField(
        required=False,
        allow_null=True,
        default=None,
        help_text="Only snoozed (true) or none (false); status=open leaves them out",
    )
    cursor = serializers.CharField(max_length=200, required=False)
    limit = serializers.IntegerField(min_value=1, max_value=100, default=50)


class SearchQuery(serializers.Serializer):
    q = serializers.CharField(min_length=2, max_length=200, help_text="Words to find; websearch syntax on PostgreSQL")
    cursor = serializers.CharField(max_length=200, required=False)
    limit = serializers.IntegerField(min_value=1, max_value=50, default=20)


class LabelIn(StrictSerializer):
    name = StrictCharField(max_length=40)
    color = serializers.RegexField(rf"\A{COLOR.pattern}\Z", help_text="#rrggbb")


class MessagePageQuery(serializers.Serializer):
    before = serializers.IntegerField(min_value=1, required=False, help_text="Messages older than this message id")
    after = serializers.IntegerField(min_value=1, required=False, help_text="Messages newer than this message id")
    limit = serializers.IntegerField(min_value=1, max_value=100, default=50)

    def validate(self, attrs: dict) -> dict:
        if "before" in attrs and "after" in attrs:
            raise serializers.ValidationError({"after": ["Use before or after, not both."]})
        return attrs


class JSONDictField(serializers.DictField):
    """An object; in a multipart form (a template with a header file) its JSON text."""

    def get_value(self, dictionary):
        if hasattr(dictionary, "getlist") and self.field_name in dictionary:
            return dictionary.get(self.field_name)  # the form's JSON text, not DRF's field[key] spelling
        return super().get_value(dictionary)

    def to_internal_value(self, data):
        if isinstance(data, str):
            try:
                data = json.loads(data)
            except (ValueError, RecursionError):
                self.fail("not_a_dict", input_type="text")
        if isinstance(data, dict) and unstorable(list(data)):
            raise serializers.ValidationError("A key holds a character that cannot be stored.")
        return super().to_internal_value(data)


class QuestionIn(serializers.Serializer):
    """A question the patient answers with a tap (conversations.questions checks WhatsApp's limits)."""

    buttons = serializers.ListField(
        child=StrictCharField(max_length=100),
        required=False,
        max_length=10,
        help_text="Up to 3 reply buttons (each up to 20 characters): the text becomes a question",
    )
    list = serializers.DictField(
        required=False,
        help_text='Up to 10 options behind a button: {"button": "Ver opções", "options": [{"title": "…"}]}',
    )


class SendMessageIn(StrictSerializer, QuestionIn):
    content = StrictCharField(max_length=MAX_TEXT_LENGTH, required=False, allow_blank=True, default="")
    client_id = serializers.UUIDField(
        required=False, help_text="Chosen by the client; a retry with it is not stored twice"
    )
    file = serializers.FileField(required=False, help_text="multipart only: one image, video, audio or document")
    voice = serializers.BooleanField(
        required=False, default=False, help_text="The file is a recorded voice note (OGG/Opus): sent as one"
    )
    reply_to = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=2**63 - 1,
        help_text="The id of a message of this conversation to quote (sent as WhatsApp's context)",
    )
    template = StrictCharField(
        max_length=512, required=False, help_text="An approved template's name (GET /api/templates/), instead of text"
    )
    variables = JSONDictField(
        child=StrictCharField(max_length=1024, allow_blank=True),
        required=False,
        default=dict,
        help_text='The template\'s variables by name, e.g. {"1": "Maria", "2": "10/12"}',
    )
    header = JSONDictField(
        child=StrictCharField(max_length=1024, allow_blank=True),
        required=False,
        help_text="A template's header variables by name (a text header); a media header takes `file`",
    )
    button_parameters = JSONDictField(
        child=StrictCharField(max_length=1024, allow_blank=True),
        required=False,
        help_text='A template\'s button values by index: a URL\'s suffix, a quick reply\'s payload, e.g. {"0": "a1b2"}',
    )

    def validate(self, attrs: dict) -> dict:
        if "template" in attrs:
            if attrs.get("content", "").strip():
                raise serializers.ValidationError({"template": ["Send a template or text and files, not both."]})
            if "reply_to" in attrs:
                raise serializers.ValidationError({"reply_to": ["A template cannot quote a message."]})
            if "buttons" in attrs or "list" in attrs:
                raise serializers.ValidationError({"buttons": ["A template carries its own buttons."]})
            if attrs.get("voice"):
                raise serializers.ValidationError({"voice": ["A template is not a voice note."]})
            return attrs
        if not attrs.get("content", "").strip() and "file" not in attrs:
            raise serializers.ValidationError({"content": ["Send some text or a file."]})
        return attrs


class NoteIn(StrictSerializer):
    content = StrictCharField(max_length=MAX_NOTE_CHARS, help_text="The note; @name mentions a colleague")


class QuickReplyIn(StrictSerializer):
    shortcut = StrictCharField(max_length=33, help_text='Typed after "/" in the composer, e.g. "endereco"')
    content = StrictCharField(max_length=MAX_REPLY_CHARS, help_text="May hold {{nome}}, {{primeiro_nome}}, {{clinica}}")
    buttons = serializers.ListField(
        child=StrictCharField(max_length=100),
        required=False,
        max_length=10,
        default=list,
        help_text="Up to 3 reply buttons (each up to 20 characters) it asks with",
    )


class NotePageQuery(serializers.Serializer):
    before = serializers.IntegerField(min_value=1, required=False, help_text="Notes older than this note id")
    limit = serializers.IntegerField(min_value=1, max_value=100, default=50)


class ResendIn(StrictSerializer):
    client_id = serializers.UUIDField(required=False, help_text="Chosen by the client; a retry resends once")


class ReactionIn(StrictSerializer):
    emoji = StrictCharField(max_length=16, allow_blank=True, help_text='One emoji; "" takes the reaction back')


class EraseIn(StrictSerializer):
    confirm = serializers.BooleanField(help_text="true: erasure cannot be undone")

    def validate_confirm(self, value: bool) -> bool:
        if value is not True:
            raise serializers.ValidationError("Send confirm: true; erasure cannot be undone.")
        return value


class MergeIn(StrictSerializer):
    merge_id = StrictIntegerField(min_value=1, help_text="The other record of the same patient, merged into this one")
    confirm = serializers.BooleanField(help_text="true: a merge cannot be undone")

    def validate_confirm(self, value: bool) -> bool:
        if value is not True:
            raise serializers.ValidationError("Send confirm: true; a merge cannot be undone.")
        return value


class MergePreviewQuery(StrictSerializer):
    merge_id = serializers.IntegerField(min_value=1)


class ReadIn(StrictSerializer):
    message_id = StrictIntegerField(min_value=1)


class ConversationPatchIn(StrictSerializer):
    status = serializers.ChoiceField(choices=Conversation.Status.values, required=False)
    assignee = StrictIntegerField(min_value=1, required=False, allow_null=True, help_text="A user id, or null")
    answered_by = serializers.ChoiceField(
        choices=Conversation.AnsweredBy.values,
        required=False,
        help_text='"staff" takes the conversation from the assistant (it pauses); "assistant" gives it back',
    )
    labels = serializers.ListField(
        child=StrictIntegerField(min_value=1, max_value=2**63 - 1),
        required=False,
        max_length=50,
        help_text="Exactly these labels (ids of the clinic's), replacing the ones it has",
    )
    snoozed_until = serializers.DateTimeField(
        required=False, allow_null=True, help_text="Snooze until then (a future time, with its offset); null wakes it"
    )

    def validate(self, attrs: dict) -> dict:
        if not attrs:
            raise serializers.ValidationError(
                {"non_field_errors": ["Send status, assignee, answered_by, labels or snoozed_until."]}
            )
        return attrs


class ActionIn(StrictSerializer):
    action_type = serializers.RegexField(ACTION_TYPE.pattern, max_length=64, help_text="e.g. appointment_created")
    action_data = StorableDictField(required=False, default=dict)


class ContactListQuery(serializers.Serializer):
    q = serializers.CharField(max_length=100, required=False)
    cursor = serializers.CharField(max_length=200, required=False)
    limit = serializers.IntegerField(min_value=1, max_value=100, default=50)


class PatientRecordIn(StrictSerializer):
    """What staff correct of a patient's record: any of these, the others left as they are."""

    name = StrictCharField(required=False, allow_blank=True, max_length=MAX_NAME_CHARS, validators=[refuse_unstorable])
    email = serializers.EmailField(required=False, allow_blank=True, max_length=254)
    notes = StrictCharField(
        required=False,
        allow_blank=True,
        max_length=MAX_NOTES_CHARS,
        trim_whitespace=False,
        validators=[refuse_unstorable],
    )

    def validate(self, data):
        if not data:
            raise serializers.ValidationError({"name": ["Send at least one of name, email or notes."]})
        return data
