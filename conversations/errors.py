"""Errors an action raises when its input breaks a rule; each has a stable code the API can return."""


class ActionError(Exception):
    """A request the domain refuses; `code` is stable, the message says what to fix."""

    code = "invalid"

    def __init__(self, detail: str, *, field: str | None = None):
        super().__init__(detail)
        self.detail = detail
        self.field = field


class InvalidInput(ActionError):
    code = "invalid"


class StorageFailed(ActionError):
    """A file could not be kept (the disk is full, the storage is away): nothing was stored or sent."""

    code = "storage_unavailable"


class NotAMember(ActionError):
    code = "not_a_member"


class WrongClinic(ActionError):
    """An object of another clinic was named; callers answer it as not found, never confirming it exists."""

    code = "not_found"


class OutsideReplyWindow(ActionError):
    """Free text after WhatsApp's 24-hour window: Meta would refuse it, so it is refused before sending."""

    code = "outside_reply_window"


NO_WHATSAPP_NUMBER = (
    "Nenhum número de WhatsApp conectado: a clínica não tem um número para enviar, então nada foi enviado. "
    "Peça ao suporte que conecte um número."
)


class NoWhatsAppNumber(ActionError):
    """The clinic has no WhatsApp number connected: a reply would reach nobody, so none is stored."""

    code = "no_whatsapp_number"

    def __init__(self, detail: str = NO_WHATSAPP_NUMBER, *, field: str | None = None):
        super().__init__(detail, field=field)


class ErasedPatient(ActionError):
    """A notification about a patient who was erased (LGPD): Meta delivering an old one again must not
    bring them back."""

    code = "erased_patient"


class TemplatesUnavailable(ActionError):
    """The clinic's approved templates could not be read from WhatsApp just now."""

    code = "templates_unavailable"
