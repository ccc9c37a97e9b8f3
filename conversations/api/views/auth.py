"""Token login, refresh with rotation, and logout for API clients (JWT)."""

from django.contrib.auth import authenticate, get_user_model
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import RefreshToken

from conversations import rate_limits
from conversations.access import session_is_open
from conversations.actions.api_sessions import (
    RefreshReused,
    access_token_of,
    open_api_session,
    revoke_api_session,
    rotate_refresh_token,
)
from conversations.api.auth import ClinicJWTAuthentication
from conversations.api.inputs import LogoutIn, RefreshIn, TokenIn
from conversations.api.outputs import ClinicOut, ErrorOut, TokenPairOut
from conversations.api.throttling import LoginThrottle, RefreshThrottle
from conversations.api.views.base import client_ip
from conversations.models import Membership
from conversations.selectors import membership_for, memberships_of


def token_pair(membership: Membership, sid: str) -> dict:
    refresh = RefreshToken.for_user(membership.user)
    refresh["clinic_id"] = membership.clinic_id
    refresh["role"] = membership.role
    refresh["sid"] = sid
    return {"access": str(refresh.access_token), "refresh": str(refresh)}


def choose_membership(user, clinic_id: int | None) -> Membership:
    memberships = list(memberships_of(user))
    if clinic_id is not None:
        chosen = next((m for m in memberships if m.clinic_id == clinic_id), None)
        if chosen is None:
            raise exceptions.PermissionDenied("You are not a member of that clinic.", code="not_a_member")
        return chosen
    if not memberships:
        raise exceptions.PermissionDenied("Your user belongs to no clinic yet.", code="no_clinic")
    if len(memberships) > 1:
        ids = ", ".join(str(m.clinic_id) for m in memberships)
        raise exceptions.ValidationError({"clinic_id": [f"You work for several clinics; choose one of: {ids}."]})
    return memberships[0]


class TokenView(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = [LoginThrottle]

    @extend_schema(
        request=TokenIn, responses={200: TokenPairOut, 400: ErrorOut, 401: ErrorOut, 403: ErrorOut}, tags=["auth"]
    )
    def post(self, request: Request) -> Response:
        """Log in with username and password; the tokens carry the clinic and the role."""
        data = TokenIn(data=request.data)
        data.is_valid(raise_exception=True)
        username = data.validated_data["username"]
        wait = rate_limits.user_locked(username, client_ip(request))  # the address: counted by LoginThrottle
        if wait is not None:
            raise exceptions.Throttled(wait, detail="Too many failed logins for this user; try again later.")
        user = authenticate(request._request, username=username, password=data.validated_data["password"])
        if user is None or not user.is_active:
            rate_limits.login_failed(username, client_ip(request))
            raise exceptions.AuthenticationFailed("Wrong username or password.", code="invalid_credentials")
        membership = choose_membership(user, data.validated_data.get("clinic_id"))
        session = open_api_session(membership=membership, ip=client_ip(request))
        clinic = ClinicOut({"clinic": membership.clinic, "role": membership.role, "active": True}).data
        return Response({**token_pair(membership, str(session.sid)), "clinic": clinic})

    def get_authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


class RefreshView(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = [RefreshThrottle]  # not the logins' bucket: a busy integration must not lock logins

    @extend_schema(request=RefreshIn, responses={200: TokenPairOut, 400: ErrorOut, 401: ErrorOut}, tags=["auth"])
    def post(self, request: Request) -> Response:
        """A new access token and a new refresh token; the refresh token sent can never be used again."""
        data = RefreshIn(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            refresh = RefreshToken(data.validated_data["refresh"])
        except TokenError as error:
            raise exceptions.AuthenticationFailed(str(error), code="token_not_valid") from None
        user = get_user_model().objects.filter(pk=refresh.get("user_id"), is_active=True).first()
        membership = membership_for(user, refresh.get("clinic_id")) if user else None
        if membership is None or not session_is_open(refresh.get("sid"), user):
            raise exceptions.AuthenticationFailed("This session has ended; log in again.", code="session_revoked")
        try:
            refresh = rotate_refresh_token(refresh, role=membership.role)
        except RefreshReused:
            raise exceptions.AuthenticationFailed(
                "This refresh token was already used.", code="token_not_valid"
            ) from None
        return Response({"access": str(access_token_of(refresh)), "refresh": str(refresh)})

    def get_authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


class LogoutView(APIView):
    authentication_classes = [ClinicJWTAuthentication]

    @extend_schema(request=LogoutIn, responses={204: None, 400: ErrorOut, 401: ErrorOut}, tags=["auth"])
    def post(self, request: Request) -> Response:
        """End this token's session: its access and refresh tokens stop working at once."""
        data = LogoutIn(data=request.data)
        data.is_valid(raise_exception=True)
        token = request.auth.token
        if "refresh" in data.validated_data:
            try:
                refresh = RefreshToken(data.validated_data["refresh"])
            except TokenError as error:
                raise exceptions.ValidationError({"refresh": [str(error)]}) from None
            if refresh.get("sid") != token.get("sid"):
                raise exceptions.ValidationError({"refresh": ["That refresh token belongs to another session."]})
            refresh.blacklist()
        revoke_api_session(sid=token.get("sid"), user=request.user, ip=client_ip(request))
        return Response(status=status.HTTP_204_NO_CONTENT)
