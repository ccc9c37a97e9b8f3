"""The installation's accounts: people, permission groups, revoked tokens, support's own password."""

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_user_model, update_session_auth_hash
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.forms import PasswordChangeForm
from django.contrib.auth.models import Group
from django.contrib.auth.views import PasswordChangeView
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from rest_framework_simplejwt.token_blacklist.admin import BlacklistedTokenAdmin
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken

from conversations.actions.support import (
    delete_account,
    save_account,
    set_account_password,
    set_account_relations,
)
from conversations.admin.base import ReadOnlyAdmin, SupportActions
from conversations.api.views.base import client_ip
from conversations.models import ReadMarker


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

    def get_deleted_objects(self, objs, request: HttpRequest):
        """A person's read markers go with them: they are that person's own state, not history, so their
        read-only page does not stand in the way (what they wrote stays, no longer naming them)."""
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        perms_needed.discard(ReadMarker._meta.verbose_name)
        return deleted, counts, perms_needed, protected

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
