"""Follow-up conversations built from a benchmark's gold tables, for ``bench/followups.py``.

A conversation is a benchmark question (the first turn) and a follow-up whose text alone names
no table, whose gold keeps or extends the first one's:

- *keep*: a follow-up that refines the answer ("Only the first ten of those, please."); its
  gold is the first question's;
- *extend*: a follow-up asking for a column of a table the first question did not need but a
  foreign key joins to one it did ("And also their billing city?"); its gold is the first
  question's plus that table.

"Names no table" is checked word by word as the LM simulator's lexical policy reads text: no
word of the follow-up is a word of any table's name or of any database's name in the set. A
template or column that would name one is skipped. Seeded: the same files and seed give the
same conversations.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from app.eval.spider import Database, Question
from app.simulator.policy import tokens

__all__ = ["KEEP_TEMPLATES", "Conversation", "build_conversations", "table_words"]

KEEP_TEMPLATES = (
    "Only the first ten of those, please.",
    "Now sort that the other way round.",
    "Same again, but just how many there are.",
    "And what about the ones before that?",
    "Could you break that down further?",
    "Drop the duplicates from that answer.",
)
_ID_COLUMN = re.compile(r"(^|_)(id|key|code)$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Conversation:
    """A first question and its follow-up, with both gold sets (original table names)."""

    id: str
    db_id: str
    first: str
    first_gold: tuple[str, ...]
    follow_up: str
    follow_up_gold: tuple[str, ...]
    kind: str  # "keep" or "extend"


def table_words(databases: Sequence[Database]) -> frozenset[str]:
    """Every word of every table name and database name: what a follow-up must not use."""
    words: set[str] = set()
    for db in databases:
        words |= tokens(db.db_id)
        for table in db.tables:
            words |= tokens(table)
    return frozenset(words)


def _neighbours(db: Database, gold: Sequence[str]) -> list[str]:
    """Tables a foreign key joins to a gold table, not gold themselves, in schema order."""
    table_of = [db.tables[t] if t >= 0 else "" for t, _, _ in db.columns]
    wanted = {g.casefold() for g in gold}
    found: set[str] = set()
    for col, ref in db.foreign_keys:
        a, b = table_of[col], table_of[ref]
        if a.casefold() in wanted and b.casefold() not in wanted:
            found.add(b)
        if b.casefold() in wanted and a.casefold() not in wanted:
            found.add(a)
    return [t for t in db.tables if t in found]


def _extension(
    db: Database, gold: Sequence[str], banned: frozenset[str], rng: random.Random
) -> tuple[str, str] | None:
    """A (table, follow-up text) asking for a column of a joined table, or None when none reads cleanly."""
    candidates = []
    for table in _neighbours(db, gold):
        index = db.tables.index(table)
        for t, column, _ in db.columns:
            words = tokens(column)
            if t == index and words and not words & banned and not _ID_COLUMN.search(column):
                text = f"And also their {' '.join(column.replace('_', ' ').split()).lower()}?"
                if not tokens(text) & banned:
                    candidates.append((table, text))
    return rng.choice(candidates) if candidates else None


def build_conversations(
    databases: Mapping[str, Database],
    questions: Sequence[Question],
    gold: Mapping[str, Sequence[str]],
    count: int,
    seed: int = 0,
) -> list[Conversation]:
    """Up to ``count`` conversations, keep and extend alternating, from a seeded order of ``questions``."""
    banned = table_words(list(databases.values()))
    keep = [t for t in KEEP_TEMPLATES if not tokens(t) & banned]
    rng = random.Random(seed)
    order = list(questions)
    rng.shuffle(order)
    conversations: list[Conversation] = []
    for question in order:
        first_gold = tuple(gold.get(question.id, ()))
        if len(conversations) >= count or not first_gold or tokens(question.question) <= set():
            continue
        extend = len(conversations) % 2 == 1
        db = databases[question.db_id]
        if extend:
            found = _extension(db, first_gold, banned, rng)
            if found is None:
                continue
            table, text = found
            follow_gold, kind = (*first_gold, table), "extend"
        else:
            text, follow_gold, kind = rng.choice(keep), first_gold, "keep"
        conversations.append(
            Conversation(question.id, question.db_id, question.question, first_gold, text, follow_gold, kind)
        )
    return conversations
