"""The clinic's WhatsApp message templates: the only messages Meta accepts once a patient's 24-hour window
has closed. Read from the Graph API where a real channel is set up (its WhatsApp Business Account's
approved templates, kept a few minutes), from the simulator's own set otherwise."""

import re
from dataclasses import asdict, dataclass

from django.conf import settings
from django.core.cache import cache

from conversations.errors import InvalidInput, TemplatesUnavailable
from conversations.models import WhatsAppChannel
from conversations.providers import channel_of
from conversations.providers.base import ProviderError

# {{1}} positional, {{nome}} named: WhatsApp's two kinds of template variables.
VARIABLE = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")


@dataclass(frozen=True)
class Template:
    name: str
    language: str
    category: str
    body: str

    @property
    def variables(self) -> list[str]:
        """Its variables in the order they appear, each once."""
        return list(dict.fromkeys(VARIABLE.findall(self.body)))

    def as_dict(self) -> dict:
        return {**asdict(self), "variables": self.variables}

    def render(self, values: dict) -> str:
        """The text the patient reads. Every variable must be given, non-blank."""
        if not isinstance(values, dict):
            raise InvalidInput("variables must be an object of variable → text.", field="variables")
        missing = [name for name in self.variables if not str(values.get(name, "")).strip()]
        if missing:
            raise InvalidInput(
                f"Fill the template's variables: {', '.join(missing)} (the message was not sent).", field="variables"
            )
        unknown = sorted(set(values) - set(self.variables))
        if unknown:
            raise InvalidInput(f"The template has no variable {', '.join(unknown)}.", field="variables")
        return VARIABLE.sub(lambda match: str(values[match.group(1)]).strip(), self.body)


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
]


def templates_for(clinic_id: int, number_id: str = "") -> tuple[str, list[Template]]:
    """("whatsapp" or "simulator", the approved templates) for the clinic's number `number_id` (else its
    first). Raises TemplatesUnavailable when WhatsApp cannot say."""
    channel = channel_of(clinic_id, number_id)
    if channel is None or channel.simulated:
        return "simulator", list(SIMULATED)
    key = f"whatsapp-templates:{channel.pk}"
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
        body = next((c.get("text", "") for c in row.get("components", []) if c.get("type") == "BODY"), "")
        templates.append(Template(row["name"], row.get("language", ""), row.get("category", ""), body))
    return templates
