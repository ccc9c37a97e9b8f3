"""Clinics and what belongs to one: memberships, patients, WhatsApp numbers, integration tokens."""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import QuerySet
from django.http import FileResponse, HttpRequest
from django.template.response import TemplateResponse

from conversations.actions.integrations import create_integration_token, revoke_integration_token
from conversations.actions.patients import merge_patients
from conversations.actions.privacy import erase_contact, export_contact
from conversations.actions.support import (
    add_membership,
    change_contact,
    delete_contact,
    remove_channel,
    remove_membership,
    save_clinic,
    set_channel_credentials,
)
from conversations.admin.base import PhoneSearch, SupportActions, mask
from conversations.api.views.base import client_ip
from conversations.errors import ActionError
from conversations.models import (
    Clinic,
    Contact,
    IntegrationToken,
    Membership,
    WhatsAppChannel,
)
from conversations.phones import canonical_phone, digits_of
from conversations.selectors import message_count_of


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ["user"]


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


@admin.action(description="Unir dois cadastros do mesmo paciente", permissions=["change"])
def merge_contacts(modeladmin, request: HttpRequest, queryset: QuerySet[Contact]):
    """Two records of one patient, of one clinic: asks which stays, naming both with their message counts."""
    contacts = list(queryset.select_related("clinic").order_by("pk"))
    if len(contacts) != 2 or contacts[0].clinic_id != contacts[1].clinic_id:
        modeladmin.message_user(request, "Escolha dois cadastros da mesma clínica para unir.", messages.WARNING)
        return None
    if request.POST.get("confirm_merge") != "yes":
        context = {
            **modeladmin.admin_site.each_context(request),
            "opts": modeladmin.opts,
            "rows": [{"contact": c, "messages": message_count_of(c)} for c in contacts],
            "title": "Unir cadastros",
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/conversations/contact/merge_confirmation.html", context)
    kept = next((c for c in contacts if str(c.pk) == request.POST.get("kept")), None)
    if kept is None:
        modeladmin.message_user(request, "Escolha qual cadastro fica.", messages.WARNING)
        return None
    other = next(c for c in contacts if c.pk != kept.pk)
    try:
        merge_patients(kept=kept, merged=other, actor=request.user, ip=client_ip(request))
    except ActionError as refused:
        modeladmin.message_user(request, f"Cadastros não unidos: {refused.detail}", messages.ERROR)
        return None
    modeladmin.message_user(request, f"Cadastros unidos em {kept.display_name}.", messages.SUCCESS)
    return None


class ContactForm(forms.ModelForm):
    """A phone typed any way is stored in its one canonical form (conversations.phones)."""

    class Meta:
        model = Contact
        fields = [  # what support may edit; the WhatsApp id is WhatsApp's (shown read-only)
            "clinic",
            "name",
            "phone",
            "whatsapp_user_id",
            "whatsapp_parent_user_id",
            "whatsapp_username",
            "profile_name",
            "email",
            "notes",
            "status",
        ]

    def clean_phone(self) -> str:
        phone = self.cleaned_data.get("phone") or ""
        return canonical_phone(digits_of(phone)) if phone else ""


@admin.register(Contact)
class ContactAdmin(PhoneSearch, SupportActions, admin.ModelAdmin):
    form = ContactForm
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
    readonly_fields = ["whatsapp_id", "created_at", "updated_at"]  # WhatsApp's own form of the number
    phone_fields = ("phone", "whatsapp_id")
    actions = [export_contacts, erase_contacts, merge_contacts]
    save_action = staticmethod(change_contact)
    delete_action = staticmethod(delete_contact)

    def get_readonly_fields(self, request: HttpRequest, obj=None):
        """A patient's clinic is chosen when they are added and never changes (change_contact)."""
        return [*super().get_readonly_fields(request, obj), *(["clinic"] if obj is not None else [])]


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
