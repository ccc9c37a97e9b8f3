"""Logging in from the browser and to the admin, with the limits of conversations.rate_limits: attempts per
client address (shared with the API's token endpoint) and failures per user name."""

import math

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm

from conversations import rate_limits


class LimitedLogin:
    """A login form that refuses, unread, past the limits, and counts its failures."""

    throttled = ""

    def clean(self):
        username = self.cleaned_data.get("username") or ""
        address = self.request.META.get("REMOTE_ADDR") if self.request else None
        wait = rate_limits.login_attempt(username, address)
        if wait is not None:
            minutes = max(1, math.ceil(wait / 60))
            self.throttled = f"Muitas tentativas de entrar. Tente de novo em {minutes} min."
            raise forms.ValidationError(self.throttled, code="throttled")
        try:
            return super().clean()
        except forms.ValidationError as refused:
            if getattr(refused, "code", None) == "invalid_login":
                rate_limits.login_failed(username, address)
            raise


class LoginForm(LimitedLogin, AuthenticationForm):
    pass


class AdminLoginForm(LimitedLogin, AdminAuthenticationForm):
    pass


class LoginView(auth_views.LoginView):
    form_class = LoginForm
    redirect_authenticated_user = True

    def form_invalid(self, form):
        response = super().form_invalid(form)
        if form.throttled:
            response.status_code = 429
        return response
