"""A question with reply buttons or a list (WhatsApp's `interactive` message), checked by Meta's rules before
anything is stored: up to 3 buttons of up to 20 characters, or a list of up to 10 options (titles up to 24,
descriptions up to 72) behind a button of up to 20; titles distinct; the question's text up to 1024. Staff,
quick replies and the n8n assistant ask them the same way; the patient's tap comes back in context."""

from conversations.errors import InvalidInput
from conversations.storable import unstorable

MAX_BUTTONS, MAX_BUTTON_CHARS = 3, 20
MAX_OPTIONS, MAX_OPTION_CHARS, MAX_DESCRIPTION_CHARS = 10, 24, 72
MAX_QUESTION_CHARS = 1024
DEFAULT_LIST_BUTTON = "Ver opções"


def _title(value, field: str, limit: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput("Each option needs a title.", field=field)
    value = value.strip()
    if len(value) > limit:
        raise InvalidInput(f"WhatsApp takes up to {limit} characters here; {value!r} has {len(value)}.", field=field)
    return value


def checked_question(*, content: str, buttons=None, options=None) -> dict | None:
    """The question's metadata (`{"buttons": [...]}` or `{"list": {"button", "options"}}`), or None for a plain
    message. Raises InvalidInput naming the field that breaks WhatsApp's rules."""
    if buttons is None and options is None:
        return None
    if unstorable(buttons):
        raise InvalidInput("A button holds a character that cannot be stored.", field="buttons")
    if unstorable(options):
        raise InvalidInput("The list holds a character that cannot be stored.", field="list")
    if buttons is not None and options is not None:
        raise InvalidInput("Send reply buttons or a list, not both.", field="list")
    if len(content or "") > MAX_QUESTION_CHARS:
        raise InvalidInput(f"A question with options holds up to {MAX_QUESTION_CHARS} characters.", field="content")
    if not (content or "").strip():
        raise InvalidInput("A question with options needs its text.", field="content")
    if buttons is not None:
        if not isinstance(buttons, list) or not 1 <= len(buttons) <= MAX_BUTTONS:
            raise InvalidInput(f"Give 1 to {MAX_BUTTONS} reply buttons.", field="buttons")
        titles = [_title(b, "buttons", MAX_BUTTON_CHARS) for b in buttons]
        if len({t.casefold() for t in titles}) != len(titles):
            raise InvalidInput("Each button needs a different title.", field="buttons")
        return {"buttons": titles}
    if not isinstance(options, dict):
        raise InvalidInput('A list is {"button": "…", "options": [{"title": "…"}, …]}.', field="list")
    unknown = sorted(set(options) - {"button", "options"})
    if unknown:
        raise InvalidInput(f"Unknown field {unknown[0]!r} in the list.", field=f"list.{unknown[0]}")
    button = _title(options.get("button", DEFAULT_LIST_BUTTON), "list.button", MAX_BUTTON_CHARS)
    rows = options.get("options")
    if not isinstance(rows, list) or not 1 <= len(rows) <= MAX_OPTIONS:
        raise InvalidInput(f"Give 1 to {MAX_OPTIONS} options.", field="list.options")
    checked = []
    for row in rows:
        row = {"title": row} if isinstance(row, str) else row
        if not isinstance(row, dict) or set(row) - {"title", "description"}:
            raise InvalidInput("An option is a title, with a description if wanted.", field="list.options")
        option = {"title": _title(row.get("title"), "list.options", MAX_OPTION_CHARS)}
        description = row.get("description")
        if description not in (None, ""):
            option["description"] = _title(description, "list.options", MAX_DESCRIPTION_CHARS)
        checked.append(option)
    if len({o["title"].casefold() for o in checked}) != len(checked):
        raise InvalidInput("Each option needs a different title.", field="list.options")
    return {"list": {"button": button, "options": checked}}


def interactive_body(content: str, question: dict) -> dict:
    """The question as the Graph API takes it (an `interactive` message); each reply's id is its position."""
    if "buttons" in question:
        buttons = [
            {"type": "reply", "reply": {"id": f"b{n}", "title": t}} for n, t in enumerate(question["buttons"], 1)
        ]
        return {"type": "button", "body": {"text": content}, "action": {"buttons": buttons}}
    rows = [{"id": f"o{n}", **option} for n, option in enumerate(question["list"]["options"], 1)]
    return {
        "type": "list",
        "body": {"text": content},
        "action": {"button": question["list"]["button"], "sections": [{"title": "Opções", "rows": rows}]},
    }
