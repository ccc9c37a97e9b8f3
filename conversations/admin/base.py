"""What every page of the support admin shares: read-only history, writes through named actions."""

from collections.abc import Callable

from django.contrib import admin
from django.db.models import Q, QuerySet
from django.http import HttpRequest

from conversations.api.views.base import client_ip
from conversations.phones import digits_of, search_forms


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


class PhoneSearch:
    """A phone typed any way finds the patient: '+55 11 98765-4321', WhatsApp's '551187654321' (a Brazilian
    mobile without its ninth digit) or part of either (conversations.phones). `phone_fields`: where to look."""

    phone_fields: tuple[str, ...] = ()

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str):
        found, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        digits = digits_of(search_term)
        if len(digits) >= 8:
            by_phone = Q()
            for form in search_forms(digits):
                for field in self.phone_fields:
                    by_phone |= Q(**{f"{field}__contains": form})
            found = found | queryset.filter(by_phone)
        return found, may_have_duplicates
