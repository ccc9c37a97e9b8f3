"""The support team's admin: every model findable, history read-only, secrets never shown in full."""

from collections.abc import Callable

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_user_model, update_session_auth_hash
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.forms import PasswordChangeForm
from django.contrib.auth.models import Group
from django.contrib.auth.views import PasswordChangeView
from django.db.models import OuterRef, QuerySet, Subquery
from django.http import FileResponse, HttpRequest, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from rest_framework_simplejwt.token_blacklist.admin import BlacklistedTokenAdmin
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken

from conversations.actions.conversations import set_conversation_status
from conversations.actions.integrations import create_integration_token, revoke_integration_token
from conversations.actions.privacy import erase_contact, export_contact
from conversations.actions.support import (
    add_membership,
    change_contact,
    delete_account,
    delete_contact,
    remove_channel,
    remove_membership,
    save_account,
    save_clinic,
    set_account_password,
    set_account_relations,
    set_channel_credentials,
)
from conversations.api.views.base import client_ip
from conversations.models import (
    AuditEvent,
    Clinic,
    Contact,
    Conversation,
    ConversationAction,
    DeliveryAttempt,
    IntegrationToken,
    Membership,
    Message,
    MessageAttachment,
    PendingStatus,
    ReadMarker,
    WhatsAppChannel,
)
from realtime.models import Event


def mask(secret: str) -> str:
    """Enough of a secret to tell two apart, never enough to use one: '••••••3f9a'."""
    if not secret:
        return "—"
    return "••••••" + secret[-4:] if len(secret) > 12 else "••••••"


class ReadOnlyAdmin(admin.ModelAdmin):
    """History is what happened: support may read it, never edit it here."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ["user"]


class SupportActions:
    """Saves and deletions go through the kind's named support action: audited, and told to open screens
    where they show. A kind without a `delete_action` cannot be deleted here."""

    save_action: Callable
    delete_action: Callable | None = None

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return self.delete_action is not None and super().has_delete_permission(request, obj)

    def save_model(self, request: HttpRequest, obj, form, change: bool) -> None:
        type(self).save_action(obj, actor=request.user, editable=list(form.base_fields), ip=client_ip(request))

    def delete_model(self, request: HttpRequest, obj) -> None:
        type(self).delete_action(obj, actor=request.user, ip=client_ip(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for obj in queryset:
            self.delete_model(request, obj)


@admin.register(Clinic)
class ClinicAdmin(SupportActions, admin.ModelAdmin):
    list_display = ["name", "slug", "timezone", "retention_days", "event_seq", "created_at"]
    search_fields = ["name", "slug"]
    list_filter = ["timezone"]
    readonly_fields = ["event_seq", "created_at"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]
    save_action = staticmethod(save_clinic)

    def save_formset(self, request: HttpRequest, form, formset, change: bool) -> None:
        """The memberships edited in the clinic's page: each added, changed or removed by its action."""
        formset.save(commit=False)
        for membership in formset.deleted_objects:
            remove_membership(membership, actor=request.user, ip=client_ip(request))
        for membership in formset.new_objects:
            add_membership(membership, actor=request.user, ip=client_ip(request))
        for membership, fields in formset.changed_objects:
            add_membership(membership, actor=request.user, editable=fields, ip=client_ip(request))


@admin.register(Membership)
class MembershipAdmin(SupportActions, admin.ModelAdmin):
    list_display = ["user", "clinic", "role", "created_at"]
    list_filter = ["role", "clinic"]
    search_fields = ["user__username", "user__first_name", "user__last_name", "user__email", "clinic__name"]
    raw_id_fields = ["user"]
    autocomplete_fields = ["clinic"]
    save_action = staticmethod(add_membership)
    delete_action = staticmethod(remove_membership)


@admin.action(description="Exportar dados do paciente (LGPD)", permissions=["change"])
def export_contacts(modeladmin, request: HttpRequest, queryset: QuerySet[Contact]):
    if queryset.count() != 1:
        modeladmin.message_user(request, "Escolha um paciente por vez para exportar.", messages.WARNING)
        return None
    contact = queryset.select_related("clinic").get()
    archive = export_contact(contact=contact, actor=request.user, ip=client_ip(request))
    response = FileResponse(archive, as_attachment=True, filename=f"paciente-{contact.pk}.zip")
    response["Content-Type"] = "application/zip"
    response["Cache-Control"] = "no-store"
    return response


@admin.action(description="Anonimizar pacientes (LGPD)", permissions=["delete"])
def erase_contacts(modeladmin, request: HttpRequest, queryset: QuerySet[Contact]):
    """Asks first (this cannot be undone), like the admin's own delete."""
    if request.POST.get("confirm_erasure") != "yes":
        context = {
            **modeladmin.admin_site.each_context(request),
            "opts": modeladmin.opts,
            "contacts": queryset.select_related("clinic"),
            "title": "Anonimizar pacientes",
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/conversations/contact/erase_confirmation.html", context)
    for contact in queryset:
        erase_contact(contact=contact, actor=request.user, ip=client_ip(request))
    modeladmin.message_user(request, f"{queryset.count()} paciente(s) anonimizado(s).", messages.SUCCESS)
    return None


@admin.register(Contact)
class ContactAdmin(SupportActions, admin.ModelAdmin):
    list_display = ["display_name", "phone_display", "whatsapp_username", "whatsapp_user_id", "clinic", "status"]
    list_filter = ["status", "clinic"]
    search_fields = [
        "name",
        "profile_name",
        "phone",
        "whatsapp_username",
        "=whatsapp_user_id",
        "=whatsapp_parent_user_id",
        "email",
    ]
    autocomplete_fields = ["clinic"]
    readonly_fields = ["created_at", "updated_at"]
    actions = [export_contacts, erase_contacts]
    save_action = staticmethod(change_contact)
    delete_action = staticmethod(delete_contact)


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
class ConversationAdmin(ReadOnlyAdmin):
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


class WhatsAppChannelForm(forms.ModelForm):
    """Secrets are write-only: typed in to set them, left blank to keep the stored ones."""

    SECRETS = ("access_token", "app_secret", "verify_token")
    access_token = forms.CharField(required=False, widget=forms.PasswordInput(render_value=False))
    app_secret = forms.CharField(required=False, widget=forms.PasswordInput(render_value=False))
    verify_token = forms.CharField(required=False, widget=forms.PasswordInput(render_value=False))

    class Meta:
        model = WhatsAppChannel
        fields = [
            "clinic",
            "phone_number_id",
            "display_phone_number",
            "access_token",
            "app_secret",
            "verify_token",
            "business_account_id",
            "simulated",
        ]

    def clean(self) -> dict:
        data = super().clean()
        for name in self.SECRETS:
            if not data.get(name):
                if not self.instance.pk or not getattr(self.instance, name):
                    self.add_error(name, "Obrigatório ao criar o canal.")
                else:
                    data[name] = getattr(self.instance, name)
        return data


@admin.register(WhatsAppChannel)
class WhatsAppChannelAdmin(SupportActions, admin.ModelAdmin):
    form = WhatsAppChannelForm
    list_display = [
        "display_phone_number",
        "phone_number_id",
        "clinic",
        "masked_access_token",
        "masked_app_secret",
        "created_at",
    ]
    list_filter = ["clinic"]
    search_fields = ["phone_number_id", "display_phone_number", "clinic__name"]
    autocomplete_fields = ["clinic"]
    save_action = staticmethod(set_channel_credentials)
    delete_action = staticmethod(remove_channel)

    @admin.display(description="access token")
    def masked_access_token(self, obj: WhatsAppChannel) -> str:
        return mask(obj.access_token)

    @admin.display(description="app secret")
    def masked_app_secret(self, obj: WhatsAppChannel) -> str:
        return mask(obj.app_secret)


@admin.action(description="Revogar tokens")
def revoke_tokens(modeladmin, request: HttpRequest, queryset: QuerySet[IntegrationToken]) -> None:
    for token in queryset:
        revoke_integration_token(token=token, actor=request.user, ip=client_ip(request))
    modeladmin.message_user(request, "Tokens revogados.", messages.SUCCESS)


@admin.register(IntegrationToken)
class IntegrationTokenAdmin(SupportActions, admin.ModelAdmin):
    list_display = ["name", "prefix", "clinic", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["clinic"]
    search_fields = ["name", "prefix", "clinic__name"]
    fields = ["clinic", "name", "prefix", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["prefix", "created_at", "last_used_at", "revoked_at"]
    autocomplete_fields = ["clinic"]
    actions = [revoke_tokens]  # revoked, never deleted: the trail and the last use stay readable

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return obj is None and super().has_change_permission(request, obj)

    def save_model(self, request: HttpRequest, obj: IntegrationToken, form, change: bool) -> None:
        token, raw = create_integration_token(
            clinic=obj.clinic, name=obj.name, actor=request.user, ip=client_ip(request)
        )
        obj.pk = token.pk
        request.new_integration_token = raw

    def response_add(self, request: HttpRequest, obj: IntegrationToken, post_url_continue=None):
        """The new token on this one page, never stored and never put in a message: the admin's messages
        travel in a cookie."""
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "token": obj,
            "raw": request.new_integration_token,
            "title": "Token criado",
        }
        response = TemplateResponse(request, "admin/conversations/integrationtoken/created.html", context)
        response["Cache-Control"] = "no-store"
        return response


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


# --- The installation's accounts: people and permission groups -------------------------------------------


class AccountActions(SupportActions):
    """A user's or group's page: its fields, its relations (groups, permissions) and its deletion, each
    through an account action, so the trail holds every change support makes to who may do what."""

    save_action = staticmethod(save_account)
    delete_action = staticmethod(delete_account)
    relations: tuple[str, ...] = ()

    def save_related(self, request: HttpRequest, form, formsets, change: bool) -> None:
        many = {f.name for f in form.instance._meta.many_to_many if f.name in form.cleaned_data}
        if formsets or many - set(self.relations):
            raise NotImplementedError("an inline or a relation here would be saved outside the trail")
        chosen = {name: form.cleaned_data[name] for name in self.relations if name in form.cleaned_data}
        set_account_relations(form.instance, chosen, actor=request.user, ip=client_ip(request))


admin.site.unregister(get_user_model())
admin.site.unregister(Group)
admin.site.unregister(BlacklistedToken)


@admin.register(get_user_model())
class AccountAdmin(AccountActions, UserAdmin):
    relations = ("groups", "user_permissions")
    # Shown, never posted back: a form's copy (to the second) would overwrite a login made meanwhile, and
    # the trail would name fields nobody touched.
    readonly_fields = ("last_login", "date_joined")

    @method_decorator(sensitive_post_parameters())
    @method_decorator(sensitive_variables("password"))
    def user_change_password(self, request: HttpRequest, id: str, form_url: str = ""):
        """The password page's change goes through `set_account_password`; showing the form, and a form
        with errors, stay Django's."""
        user = self.get_object(request, unquote(id))
        if request.method != "POST" or user is None or not self.has_change_permission(request, user):
            return super().user_change_password(request, id, form_url)
        form = self.change_password_form(user, request.POST)
        usable = form.is_valid() and form.cleaned_data["set_usable_password"]
        if not form.is_valid() or not (usable or "unset-password" in request.POST):
            return super().user_change_password(request, id, form_url)
        password = form.cleaned_data["password1"] if usable else None
        set_account_password(user, password=password, actor=request.user, ip=client_ip(request))
        self.log_change(request, user, self.construct_change_message(request, form, None))
        messages.success(request, "Senha alterada." if usable else "Entrada por senha desativada.")
        update_session_auth_hash(request, user)
        return HttpResponseRedirect(reverse("admin:auth_user_change", args=(user.pk,)))


@admin.register(Group)
class PermissionGroupAdmin(AccountActions, GroupAdmin):
    relations = ("permissions",)


@admin.register(BlacklistedToken)
class RevokedTokenAdmin(ReadOnlyAdmin, BlacklistedTokenAdmin):
    """A refresh token is revoked by signing out (`actions.api_sessions`), never added or taken back here."""


class SupportPasswordChange(PasswordChangeView):
    """The admin's own "change my password" page, through `set_account_password` like every other."""

    @method_decorator(sensitive_variables("password"))
    def form_valid(self, form):
        password = form.cleaned_data["new_password1"]
        set_account_password(self.request.user, password=password, actor=self.request.user, ip=client_ip(self.request))
        update_session_auth_hash(self.request, self.request.user)
        return HttpResponseRedirect(self.get_success_url())


def support_password_change(request: HttpRequest):
    """Served at the admin's own address for it (taskmed/urls.py), with the admin's page and checks."""
    request.current_app = admin.site.name
    view = SupportPasswordChange.as_view(
        form_class=PasswordChangeForm,
        success_url=reverse("admin:password_change_done"),
        template_name="registration/password_change_form.html",
        extra_context=admin.site.each_context(request),
    )
    return view(request)
