"""Full-text search over a clinic's message text.

On PostgreSQL: Portuguese stemming with accents folded (the `pt_unaccent` configuration and the stored
`search_vector` of migration 0016, GIN-indexed), websearch syntax ("consulta -cancelada", "\\"exame de
sangue\\""), the newest WINDOW matches ranked by relevance, then by recency. Elsewhere (the embedded
SQLite setup) a plain fallback: messages holding every word, newest first.
"""

import re
from dataclasses import dataclass
from datetime import datetime

from django.db import connection
from django.utils.dateparse import parse_datetime

from conversations.models import Clinic, Message

# Ranked among this many of the newest matches: what staff look for is nearly always recent, and a word
# in a fifth of a million messages is ranked in milliseconds.
WINDOW = 500
# The matches are looked for first among the clinic's newest NEWEST messages, read newest first (an index
# range, a fixed cost whatever the word); only when those hold fewer than WINDOW matches does the
# full-text index find older ones. Either alone is slow for some words: the index for a frequent one (tens
# of thousands of rows to fetch and sort), the newest-first read for a rare one (every message).
NEWEST = 20_000
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
        newest AS MATERIALIZED (
            SELECT m.id, m.conversation_id, m.created_at, m.search_vector FROM conversations_message m
            WHERE m.clinic_id = %(clinic)s ORDER BY m.created_at DESC, m.id DESC LIMIT %(newest)s
        ),
        recent AS (
            SELECT n.id, n.conversation_id, n.created_at, ts_rank(n.search_vector, query.q) AS rank
            FROM newest n, query WHERE n.search_vector @@ query.q
            ORDER BY n.created_at DESC, n.id DESC LIMIT %(window)s
        ),
        older AS (
            SELECT m.id, m.conversation_id, m.created_at, ts_rank(m.search_vector, query.q) AS rank
            FROM conversations_message m, query
            WHERE m.clinic_id = %(clinic)s AND m.search_vector @@ query.q
              AND (SELECT count(*) FROM recent) < %(window)s
              AND (SELECT count(*) FROM newest) = %(newest)s
              AND (m.created_at, m.id) < (SELECT n.created_at, n.id FROM newest n ORDER BY n.created_at, n.id LIMIT 1)
            ORDER BY m.created_at DESC, m.id DESC LIMIT %(window)s
        ),
        matches AS (SELECT * FROM recent UNION ALL SELECT * FROM older LIMIT %(window)s),
        page AS (SELECT * FROM matches ORDER BY rank DESC, id DESC OFFSET %(offset)s LIMIT %(limit)s)
        SELECT page.conversation_id, page.id, page.created_at,
               ts_headline('public.pt_unaccent', m.content, query.q, %(options)s)
        FROM page JOIN conversations_message m ON m.id = page.id, query
        ORDER BY page.rank DESC, page.id DESC
    """
    params = {"q": q, "clinic": clinic_id, "newest": NEWEST, "window": WINDOW, "offset": offset, "limit": limit}
    params["options"] = options
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
