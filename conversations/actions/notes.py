"""Internal notes: staff writing to each other inside a conversation, never to the patient."""

import re
import unicodedata

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from conversations import events, jobs, push, selectors
from conversations.actions.audit import record_audit
from conversations.actions.locks import lock_conversation
from conversations.errors import InvalidInput, NotAMember
from conversations.models import Clinic, Contact, Conversation, Message, Note

MAX_NOTE_CHARS = 4096
# "@julia", "@Júlia", "@bruno.lima": a name after an @ that is not part of a word (an e-mail address).
MENTION = re.compile(r"(?<![\w@])@([\w][\w.\-]*)")


def fold(text: str) -> str:
    """Lower case without accents: "Júlia" and "julia" name the same colleague."""
    return "".join(c for c in unicodedata.normalize("NFKD", text.casefold()) if not unicodedata.combining(c))


def mentioned_in(content: str, clinic_id: int) -> list[AbstractBaseUser]:
    """The clinic's active staff an @name in the text names: by user name, or by first name when only one
    colleague has it. Names that match nobody (or several people) are left as text."""
    wanted = {fold(name).rstrip(".-") for name in MENTION.findall(content)}
    if not wanted:
        return []
    staff = [membership.user for membership in selectors.staff_of(Clinic(pk=clinic_id))]
    first_names: dict[str, list] = {}
    for user in staff:
        if user.first_name:
            first_names.setdefault(fold(user.first_name), []).append(user)
    found = {}
    for name in wanted:
        by_username = [user for user in staff if fold(user.get_username()) == name]
        for user in by_username or (first_names.get(name) if len(first_names.get(name, [])) == 1 else []):
            found[user.pk] = user
    return sorted(found.values(), key=lambda user: user.pk)


@transaction.atomic
def add_note(*, conversation: Conversation, author: AbstractBaseUser, content: str, ip: str | None = None) -> Note:
    """Write an internal note in the conversation's timeline. It goes to no provider, leaves the patient's
    unread count and the list's last message alone, and tells the colleagues it mentions."""
    content = content.strip() if isinstance(content, str) else ""
    if not content:
        raise InvalidInput("Write the note's text.", field="content")
    if len(content) > MAX_NOTE_CHARS:
        raise InvalidInput(f"A note holds up to {MAX_NOTE_CHARS} characters.", field="content")
    if not selectors.is_member(author, conversation.clinic_id):
        raise NotAMember("Only staff of the conversation's clinic can write notes in it.")
    note = Note.objects.create(
        clinic_id=conversation.clinic_id, conversation_id=conversation.pk, author=author, content=content
    )
    mentions = mentioned_in(content, conversation.clinic_id)
    note.mentions.set(mentions)
    record_audit(
        clinic_id=conversation.clinic_id,
        actor=author,
        action="conversation.note",
        obj=note,
        detail={"conversation_id": conversation.pk, "mentions": [user.pk for user in mentions]},
        ip=ip,
    )
    events.publish_note_new(note, mentions)
    if mentions and push.wanted(conversation.clinic_id):
        jobs.push("mention", note.pk)  # the mentioned colleagues' devices, by the worker
    return note


def keep_if_staff_answer(
    *, clinic: Clinic, phone: str, whatsapp_user_id: str, content: str, external_id: str | None = None
) -> Note | None:
    """The assistant's answer to the patient's conversation, when staff have taken it: kept in the
    timeline as a suggestion for them (never sent), shown on every screen of it; the same `external_id`
    again is the same suggestion. None when the assistant answers that conversation (or there is none
    yet, or the answer was stored as a message before): the caller stores it as usual. Call inside the
    transaction that stores it then, so that staff taking the conversation over meanwhile wait for it."""
    if external_id and Message.objects.filter(clinic=clinic, external_id=external_id).exists():
        return None  # stored and sent before staff took over: the caller answers it as a repeat
    conversation = selectors.latest_conversation_for(clinic, phone=phone, whatsapp_user_id=whatsapp_user_id)
    if conversation is None:
        return None
    # The patient, then the conversation, as a message being stored locks them: two never wait on each other.
    Contact.objects.select_for_update(no_key=True).filter(pk=conversation.contact_id).first()
    conversation = lock_conversation(conversation)  # held to the caller's commit: Assumir waits, or is seen
    if conversation.answered_by != Conversation.AnsweredBy.STAFF:
        return None
    if external_id:
        kept = Note.objects.filter(clinic=clinic, source_id=external_id).first()
        if kept is not None:
            return kept
    return keep_suggestion(conversation=conversation, content=content, source_id=external_id or "")


def keep_suggestion(*, conversation: Conversation, content: str, source_id: str = "") -> Note:
    content = content.strip() if isinstance(content, str) else ""
    if not content:
        raise InvalidInput("A suggestion needs some text.", field="content")
    note = Note.objects.create(
        clinic_id=conversation.clinic_id,
        conversation_id=conversation.pk,
        content=content[:MAX_NOTE_CHARS],
        suggestion=True,
        source_id=source_id[:255],
    )
    events.publish_note_new(note, [])
    return note
