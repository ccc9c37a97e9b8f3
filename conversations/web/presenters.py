"""How the workspace words things, written once on the server: who sent a message, status and tick labels,
the list's filters. The pages render with these, and hand them to the scripts as data (json_script)."""

import re
from dataclasses import dataclass
from urllib.parse import urlencode

from django.conf import settings
from django.http import QueryDict

from conversations.media import WHATSAPP_MEDIA
from conversations.models import Conversation, Membership, Message
from conversations.storable import storable

TABS = {"mine": "Minhas", "unassigned": "Sem responsável", "all": "Todas"}
STATUSES = {
    "open": "Abertas",
    "pending": "Pendentes",
    "snoozed": "Adiadas",
    "awaiting": "Aguardando resposta",
    "resolved": "Resolvidas",
    "all": "Todas as situações",
}
STATUS_LABELS = dict(Conversation.Status.choices)
TICKS = {
    "pending": ("◔", "Enviando"),
    "sent": ("✓", "Enviada"),
    "delivered": ("✓✓", "Entregue"),
    "read": ("✓✓", "Lida"),
    "failed": ("!", "Falhou"),
    "unknown": ("?", "Entrega incerta: o WhatsApp pode ter recebido"),
}
SENDER_LABELS = {"you": "Você", "ai": "Assistente", "team": "Equipe", "business_app": "WhatsApp da clínica"}


@dataclass(frozen=True)
class ListFilters:
    """The list's tab, status and search, as they travel in the URL (`?tab=mine&status=open&q=ana`); the
    status may also be "awaiting" (*Aguardando resposta*)."""

    tab: str = "all"
    status: str = "open"
    q: str = ""
    label: int | None = None

    @classmethod
    def from_query(cls, query: QueryDict) -> "ListFilters":
        tab, status, label = query.get("tab", "all"), query.get("status", "open"), query.get("label", "")
        return cls(
            tab=tab if tab in TABS else "all",
            status=status if status in STATUSES else "open",
            q=storable(query.get("q") or "").strip()[:100],
            label=as_id(label),
        )

    def page_kwargs(self, user_id: int) -> dict:
        """Keyword arguments of `selectors.conversation_page` for these filters ("Adiadas": the snoozed,
        whatever their status; "Abertas" leaves them out)."""
        if self.status == "awaiting":  # the patient waits for an answer: the longest wait first
            return {
                "status": None,
                "snoozed": False,
                "awaiting": True,
                "assignee_id": user_id if self.tab == "mine" else None,
                "unassigned": self.tab == "unassigned",
                "q": self.q or None,
                "label_id": self.label,
            }
        return {
            "status": None if self.status in ("all", "snoozed") else self.status,
            "snoozed": True if self.status == "snoozed" else None,
            "assignee_id": user_id if self.tab == "mine" else None,
            "unassigned": self.tab == "unassigned",
            "q": self.q or None,
            "label_id": self.label,
        }

    def query(self, **changes) -> str:
        values = {"tab": self.tab, "status": self.status, "q": self.q, "label": self.label, **changes}
        return urlencode({k: v for k, v in values.items() if v and (k, v) not in (("tab", "all"), ("status", "open"))})


ID = re.compile(r"[1-9][0-9]{0,17}")


def as_id(value: str | None) -> int | None:
    """An id typed in a URL or a form, or None: ASCII digits only (never "²"), small enough for a key."""
    return int(value) if isinstance(value, str) and ID.fullmatch(value) else None


def staff_names(staff: list[Membership]) -> dict[int, str]:
    return {m.user_id: m.user.get_full_name() or m.user.get_username() for m in staff}


def sender_label(
    *, sender_type: str, sender_id: int | None, viewer_id: int, names: dict[int, str], metadata: dict | None = None
) -> str:
    """Who wrote a message, as this viewer reads it: "Você", a colleague's name, "Assistente", or ""
    for the patient and for WhatsApp's own system lines."""
    if sender_type == "ai":
        return SENDER_LABELS["ai"]
    if sender_type != "professional":
        return ""
    if sender_id is None:
        business_app = (metadata or {}).get("sent_from") == "whatsapp_business_app"
        return SENDER_LABELS["business_app" if business_app else "team"]
    if sender_id == viewer_id:
        return SENDER_LABELS["you"]
    return names.get(sender_id, SENDER_LABELS["team"]).split(" ")[0]


def author_label(author_id: int | None, viewer_id: int, names: dict[int, str]) -> str:
    """Who wrote an internal note, as this viewer reads it (a former colleague: "Equipe")."""
    return sender_label(sender_type="professional", sender_id=author_id, viewer_id=viewer_id, names=names)


def preview_prefix(row: Conversation, viewer_id: int, names: dict[int, str]) -> str:
    label = sender_label(
        sender_type=row.last_message_sender_type or "",
        sender_id=row.last_message_sender_id,
        viewer_id=viewer_id,
        names=names,
    )
    return f"{label}: " if label else ""


# The reactions staff pick from under a patient's message (any single emoji goes through the API).
REACTION_CHOICES = ["👍", "❤️", "😂", "😮", "😢", "🙏"]


def message_sender(message: Message, viewer_id: int, names: dict[int, str]) -> str:
    """The name over a bubble: the patient's, the colleague's, the assistant's."""
    if message.sender_type == "patient":
        return message.conversation.contact.display_name
    if message.metadata.get("auto_reply"):
        return "Resposta automática"
    if message.sender_type == "system":
        return "WhatsApp"
    return sender_label(
        sender_type=message.sender_type,
        sender_id=message.sender_id,
        viewer_id=viewer_id,
        names=names,
        metadata=message.metadata,
    )


MEDIA_LABELS = {
    "image": "imagens",
    "sticker": "figurinhas",
    "video": "vídeos",
    "audio": "áudios",
    "document": "documentos",
}


def media_limits_text() -> str:
    """WhatsApp's limits as the composer shows them, from the same table the server enforces."""

    def size(limit: int) -> str:
        return f"{limit // (1024 * 1024)} MB" if limit >= 1024 * 1024 else f"{limit // 1024} KB"

    parts = [f"{MEDIA_LABELS[kind]} até {size(limit)}" for kind, (_, limit) in WHATSAPP_MEDIA.items()]
    text = "; ".join(parts)
    return f"Arraste ou cole arquivos aqui. {text[0].upper()}{text[1:]}."


def page_config(*, user_id: int, names: dict[int, str]) -> dict:
    """What the scripts need to word things as the server does."""
    return {
        "user_id": user_id,
        "staff": names,
        "sender_labels": SENDER_LABELS,
        "status_labels": STATUS_LABELS,
        "open_button": {"open": "Aberta", "reopen": "Reabrir"},
        "empty_list": "Nenhuma conversa por aqui.",
        "reply_window_hours": settings.REPLY_WINDOW_HOURS,
        "ticks": {status: {"icon": icon, "label": label} for status, (icon, label) in TICKS.items()},
    }


def waiting_text(seconds: float) -> str:
    """How long a patient has waited (in business hours), as the list says it: "aguarda há 12 min"."""
    minutes = int(seconds // 60)
    if minutes < 1:
        return "aguarda há menos de 1 min"
    if minutes < 60:
        return f"aguarda há {minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"aguarda há {hours} h {minutes:02d} min"
    return f"aguarda há {hours} h"  # hours of the clinic's open time, never days (they are not calendar days)
