"""How the API's authentication reads in the OpenAPI schema."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ClinicJWTScheme(OpenApiAuthenticationExtension):
    target_class = "conversations.api.auth.ClinicJWTAuthentication"
    name = "jwtAuth"

    def get_security_definition(self, auto_schema) -> dict:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "An access token from POST /api/auth/token/, carrying the clinic and the role.",
        }


class ClinicSessionScheme(OpenApiAuthenticationExtension):
    target_class = "conversations.api.auth.ClinicSessionAuthentication"
    name = "cookieAuth"

    def get_security_definition(self, auto_schema) -> dict:
        return {
            "type": "apiKey",
            "in": "cookie",
            "name": "sessionid",
            "description": "The browser's session (CSRF on writes).",
        }
