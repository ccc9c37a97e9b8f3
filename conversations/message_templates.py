"""The clinic's WhatsApp message templates: the only messages Meta accepts once a patient's 24-hour window
has closed. Read from the Graph API where a real channel is set up (its WhatsApp Business Account's
approved templates, kept a few minutes), from the simulator's own set otherwise."""

import re
from dataclasses import asdict, dataclass, field

from django.conf import settings
from django.core.cache import cache

from conversations.errors import InvalidInput, TemplatesUnavailable
from conversations.models import WhatsAppChannel
from conversations.providers import channel_of
from conversations.providers.base import ProviderError

# {{1}} positional, {{nome}} named: WhatsApp's two kinds of template variables.
VARIABLE = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")


MEDIA_HEADERS = {"IMAGE": "image", "DOCUMENT": "document", "VIDEO": "video"}


@dataclass(frozen=True)
class Template:
    name: str
    language: str
    category: str
    body: str
    # {"format": "TEXT" | "IMAGE" | "DOCUMENT" | "VIDEO", "text": "…{{1}}…"} or None; the footer's text; the
    # buttons as WhatsApp lists them ({"type": "URL" | "QUICK_REPLY" | "PHONE_NUMBER", "text", "url"}).
    header: dict | None = None
    footer: str = ""
    buttons: list = field(default_factory=list)

    @property
    def variables(self) -> list[str]:
        """Its variables in the order they appear, each once."""
        return list(dict.fromkeys(VARIABLE.findall(self.body)))

    @property
    def header_variables(self) -> list[str]:
        if not self.header or self.header.get("format") != "TEXT":
            return []
        return list(dict.fromkeys(VARIABLE.findall(self.header.get("text", ""))))

    @property
    def header_media(self) -> str | None:
        """The kind of file its header takes ("image", "document", "video"), or None."""
        return MEDIA_HEADERS.get((self.header or {}).get("format", ""))

    @property
    def button_parameters(self) -> list[dict]:
        """The buttons that take a value when sent: a URL's variable suffix, a quick reply's payload."""
        found = []
        for index, button in enumerate(self.buttons):
            if button.get("type") == "URL" and VARIABLE.search(button.get("url", "")):
                found.append({"index": index, "type": "url", "text": button.get("text", ""), "url": button["url"]})
            elif button.get("type") == "QUICK_REPLY":
                found.append({"index": index, "type": "quick_reply", "text": button.get("text", "")})
        return found

    @property
    def unsupported(self) -> str:
        """What in it this inbox cannot fill yet ('' when nothing): WhatsApp would refuse it without."""
        if (self.header or {}).get("format") == "LOCATION":
            return "a location header"
        kinds = {b.get("type") for b in self.buttons} - {"URL", "QUICK_REPLY", "PHONE_NUMBER"}
        return f"{sorted(kinds)[0].lower()} buttons" if kinds else ""

    def as_dict(self) -> dict:
        return {
            **asdict(self),
            "variables": self.variables,
            "header_variables": self.header_variables,
            "header_media": self.header_media,
            "button_parameters": self.button_parameters,
            "unsupported": self.unsupported,
        }

    def render(self, values: dict) -> str:
        """The text the patient reads. Every variable must be given, non-blank."""
        return self._filled(self.body, self.variables, values, "variables")

    def render_header(self, values: dict) -> str:
        """The header's text with its variables filled ('' without a text header)."""
        if not self.header_variables and not values:
            return (self.header or {}).get("text", "") if (self.header or {}).get("format") == "TEXT" else ""
        return self._filled(self.header.get("text", "") if self.header else "", self.header_variables, values, "header")

    def button_values(self, values: dict) -> list[dict]:
        """Each button's parameter as sent: a URL's suffix (required), a quick reply's payload (its text when
        none is given). Keys are the button's index, as text."""
        if not isinstance(values, dict):
            raise InvalidInput("button_parameters must be an object of button index → text.", field="button_parameters")
        wanted = {str(b["index"]): b for b in self.button_parameters}
        unknown = sorted(set(values) - set(wanted))
        if unknown:
            raise InvalidInput(
                f"The template has no button {unknown[0]} that takes a value.", field="button_parameters"
            )
        sent = []
        for key, button in wanted.items():
            value = values.get(key, "")
            if not isinstance(value, str):
                raise InvalidInput("Each button's value is text.", field="button_parameters")
            value = value.strip()
            if button["type"] == "url" and not value:
                raise InvalidInput(f"Fill the link of the button {button['text']!r}.", field="button_parameters")
            if len(value) > 128:
                raise InvalidInput("A button's value holds up to 128 characters.", field="button_parameters")
            sent.append({"index": button["index"], "sub_type": button["type"], "value": value or button["text"]})
        return sent

    @staticmethod
    def _filled(text: str, names: list[str], values: dict, field_name: str) -> str:
        if not isinstance(values, dict):
            raise InvalidInput(f"{field_name} must be an object of variable → text.", field=field_name)
        missing = [name for name in names if not str(values.get(name, "")).strip()]
        if missing:
            raise InvalidInput(
                f"Fill the template's variables: {', '.join(missing)} (the message was not sent).", field=field_name
            )
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise InvalidInput(f"The template has no variable {', '.join(unknown)}.", field=field_name)
        return VARIABLE.sub(lambda match: str(values[match.group(1)]).strip(), text)


# What the simulator offers: the kinds of templates a clinic has approved.
SIMULATED = [
    Template(
        "lembrete_consulta",
        "pt_BR",
        "UTILITY",
        "Olá, {{1}}! Lembramos da sua consulta em {{2}} às {{3}}. Responda SIM para confirmar.",
    ),
    Template("retomar_atendimento", "pt_BR", "UTILITY", "Olá, {{1}}! Podemos continuar seu atendimento por aqui?"),
    Template("resultado_disponivel", "pt_BR", "UTILITY", "Olá, {{1}}. Seu resultado de exame já está disponível."),
    Template(
        "exame_pronto",
        "pt_BR",
        "UTILITY",
        "Olá, {{1}}. Seu exame está pronto: o laudo segue acima.",
        header={"format": "DOCUMENT"},
        footer="Dúvidas? Responda esta mensagem.",
        buttons=[
            {"type": "URL", "text": "Ver no portal", "url": "https://resultados.exemplo.com.br/{{1}}"},
            {"type": "QUICK_REPLY", "text": "Recebi"},
        ],
    ),
    Template(
        "confirmar_horario",
        "pt_BR",
        "UTILITY",
        "{{1}}, sua consulta é {{2}}. Confirma?",
        header={"format": "TEXT", "text": "Consulta com {{1}}"},
        buttons=[{"type": "QUICK_REPLY", "text": "Confirmar"}, {"type": "QUICK_REPLY", "text": "Remarcar"}],
    ),
]


def templates_for(clinic_id: int, number_id: str = "") -> tuple[str, list[Template]]:
    """("whatsapp" or "simulator", the approved templates) for the clinic's number `number_id` (else its
    first). Raises TemplatesUnavailable when WhatsApp cannot say."""
    channel = channel_of(clinic_id, number_id)
    if channel is None or channel.simulated:
        return "simulator", list(SIMULATED)
    key = f"whatsapp-templates:v2:{channel.pk}"  # v2: with header, footer and buttons
    cached = cache.get(key)
    if cached is None:
        cached = [asdict(t) for t in _from_graph(channel)]
        cache.set(key, cached, settings.TEMPLATES_CACHE_SECONDS)
    return "whatsapp", [Template(**t) for t in cached]


def template_named(clinic_id: int, number_id: str, name: str) -> Template:
    for template in templates_for(clinic_id, number_id)[1]:
        if template.name == name:
            return template
    raise InvalidInput(f"No approved template named {name!r} for this clinic.", field="template")


def _from_graph(channel: WhatsAppChannel) -> list[Template]:
    from conversations.providers.whatsapp_cloud import GraphClient

    if not channel.business_account_id:
        raise TemplatesUnavailable(
            "The clinic's WhatsApp number has no Business Account id: support sets it in the admin "
            "(WhatsApp channels), and its approved templates show here."
        )
    client = GraphClient(channel)
    try:
        rows = client.message_templates(channel.business_account_id)
    except ProviderError as failed:
        raise TemplatesUnavailable(f"WhatsApp did not list the templates: {failed.reason}") from None
    finally:
        client.close()
    templates = []
    for row in rows:
        if row.get("status") != "APPROVED":
            continue
        parts = {c.get("type"): c for c in row.get("components", []) if isinstance(c, dict)}
        header = parts.get("HEADER")
        header = {"format": header.get("format", ""), "text": header.get("text", "")} if header else None
        buttons = [
            {"type": b.get("type", ""), "text": b.get("text", ""), "url": b.get("url", "")}
            for b in (parts.get("BUTTONS") or {}).get("buttons", [])
            if isinstance(b, dict)
        ]
        templates.append(
            Template(
                row["name"],
                row.get("language", ""),
                row.get("category", ""),
                (parts.get("BODY") or {}).get("text", ""),
                header=header,
                footer=(parts.get("FOOTER") or {}).get("text", ""),
                buttons=buttons,
            )
        )
    return templates
