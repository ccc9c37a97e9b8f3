"""Full-text search over a clinic's message text.

On PostgreSQL: Portuguese stemming with accents folded (the `pt_unaccent` configuration and the stored
`search_vector` of migration 0016, GIN-indexed), websearch syntax ("consulta -cancelada", "\\"exame de
sangue\\""), the most recent WINDOW matches ranked by relevance, then by recency. Elsewhere (the embedded
SQLite setup) a plain fallback: messages holding every word, newest first.
"""

import re
from dataclasses import dataclass
from datetime import datetime

from django.db import connection
from django.utils.dateparse import parse_datetime

from conversations.models import Clinic, Message

# Ranked among this many of the newest matches: a word in a third of a million messages is still ranked
# in milliseconds, and what staff look for is nearly always recent.
WINDOW = 500
# ts_headline's marks around each matched word: control characters no message text holds.
START, STOP = "\x02", "\x03"
MARKS = re.compile(f"[{START}{STOP}]")


@dataclass(frozen=True)
class Hit:
    conversation_id: int
    message_id: int
    created_at: datetime
    marked: str  # the snippet with START/STOP around the words that matched

    @property
    def snippet(self) -> str:
        return MARKS.sub("", self.marked)


def search_messages(clinic: Clinic, q: str, *, offset: int = 0, limit: int = 20) -> tuple[list[Hit], bool]:
    """One page of the clinic's messages matching `q`, best first, and whether more follow."""
    if connection.vendor == "postgresql":
        rows = _postgres(clinic.pk, q, offset, limit + 1)
    else:
        rows = _plain(clinic.pk, q, offset, limit + 1)
    return rows[:limit], len(rows) > limit


def _postgres(clinic_id: int, q: str, offset: int, limit: int) -> list[Hit]:
    options = f"StartSel={START}, StopSel={STOP}, MaxWords=24, MinWords=10, MaxFragments=2, FragmentDelimiter=…"
    sql = """
        WITH query AS (SELECT websearch_to_tsquery('public.pt_unaccent', %(q)s) AS q),
        recent AS (
            SELECT m.id, m.conversation_id, m.created_at, ts_rank(m.search_vector, query.q) AS rank
            FROM conversations_message m, query
            WHERE m.clinic_id = %(clinic)s AND m.search_vector @@ query.q
            ORDER BY m.id DESC
            LIMIT %(window)s
        ),
        page AS (SELECT * FROM recent ORDER BY rank DESC, id DESC OFFSET %(offset)s LIMIT %(limit)s)
        SELECT page.conversation_id, page.id, page.created_at,
               ts_headline('public.pt_unaccent', m.content, query.q, %(options)s)
        FROM page JOIN conversations_message m ON m.id = page.id, query
        ORDER BY page.rank DESC, page.id DESC
    """
    params = {"q": q, "clinic": clinic_id, "window": WINDOW, "offset": offset, "limit": limit, "options": options}
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [Hit(*row) for row in cursor.fetchall()]


def _plain(clinic_id: int, q: str, offset: int, limit: int) -> list[Hit]:
    words = [word for word in re.findall(r"\w+", q) if len(word) > 1]
    if not words:
        return []
    found = Message.objects.filter(clinic_id=clinic_id)
    for word in words:
        found = found.filter(content__icontains=word)
    rows = found.order_by("-id").values_list("conversation_id", "id", "created_at", "content")[offset : offset + limit]
    return [Hit(c, m, at if isinstance(at, datetime) else parse_datetime(at), text[:200]) for c, m, at, text in rows]
