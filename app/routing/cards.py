"""Table cards: the compact text an LM reads about one table.

Card format (a contract with the LM simulator, which parses it):

    ### sales.orders [view] "One row per customer order"
    - id integer PK
    - customer_id integer FK sales.customers.id
    - note text null "free text from the clerk"

The header line starts with ``### `` and the qualified name. Warehouse comments are
untrusted: they are JSON-quoted, so a comment can never start a line, fake a header or
close the quote, and the judge's instructions tell the LM they are data.

Cards are compact (fewer tokens per table, so fewer chunks and LM calls; same information):
types in their short spelling (``timestamp``, not ``timestamp without time zone``), and a
column comment whose every word is already in the column's name or FK target (``customer_id
... FK s.customers.id "References customers"``) is left out.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache

from app.catalog.model import Table
from app.routing.lexical import words

CARD_HEADER = "### "
CUT_MARKER = "- … (card cut: {n} more columns)"
# A conservative chars-per-token estimate for English identifiers and SQL types.
CHARS_PER_TOKEN = 4
MAX_COMMENT_CHARS = 200


@dataclass(frozen=True, slots=True)
class TableCard:
    """One table's card text and its estimated token count."""

    name: str
    text: str
    tokens: int
    cut: bool = False


def estimate_tokens(text: str) -> int:
    """Estimated tokens of ``text`` (never below 1)."""
    return max(1, (len(text) + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN)


_SHORT_TYPES = (
    (re.compile(r"\bcharacter varying\b"), "varchar"),
    (re.compile(r"\bcharacter\b"), "char"),
    (re.compile(r"\b(time(?:stamp)?(?:\(\d+\))?) without time zone\b"), r"\1"),
    (re.compile(r"\b(time(?:stamp)?)(\(\d+\))? with time zone\b"), r"\1tz\2"),
)


@lru_cache(maxsize=4096)
def short_type(type_name: str) -> str:
    """A column type in its short, common spelling, lower case (``timestamptz``, ``varchar(20)``)."""
    name = type_name.lower()
    for pattern, spelling in _SHORT_TYPES:
        name = pattern.sub(spelling, name)
    return name


def _says_more(comment: str | None, known: str) -> bool:
    """Whether ``comment`` has a word that ``known`` (a column's name and FK target) lacks."""
    if not comment:
        return False
    return not set(words(comment)) <= set(words(known))


@lru_cache(maxsize=65536)  # comments repeat across a warehouse's tables
def quote(comment: str | None) -> str:
    """A warehouse comment as a one-line JSON string, shortened, or nothing."""
    if not comment or not comment.strip():
        return ""
    text = " ".join(comment.split())
    if len(text) > MAX_COMMENT_CHARS:
        text = text[: MAX_COMMENT_CHARS - 1] + "…"
    return " " + json.dumps(text, ensure_ascii=False)


def _column_lines(table: Table) -> list[str]:
    pk = set(table.primary_key)
    fk_of: dict[str, str] = {}
    for fk in table.foreign_keys:
        for fk_col, ref in zip(fk.columns, fk.ref_columns, strict=False):
            fk_of[fk_col] = f"{fk.ref_table}.{ref}"
    lines = []
    for col in table.columns:
        col_type = short_type(col.type)
        # SQLite reports no type for view columns (SQLAlchemy's NullType): say nothing then.
        parts = [f"- {col.name} {col_type}" if col_type != "nulltype" else f"- {col.name}"]
        if col.name in pk:
            parts.append("PK")
        target = fk_of.get(col.name)
        if target is not None:
            parts.append(f"FK {target}")
        if col.nullable and col.name not in pk:
            parts.append("null")
        # The FK marker already says "references", plus whatever the target's name says.
        known = f"{col.name} {target} references refers foreign key" if target else col.name
        comment = col.comment if _says_more(col.comment, known) else None
        lines.append(" ".join(parts) + quote(comment))
    return lines


def make_card(table: Table, max_tokens: int) -> TableCard:
    """The card of ``table``; a card over ``max_tokens`` is cut with a visible marker, never dropped."""
    kind = " [view]" if table.kind == "view" else ""
    header = f"{CARD_HEADER}{table.qualified_name}{kind}{quote(table.comment)}"
    lines = _column_lines(table)
    text = "\n".join([header, *lines])
    tokens = estimate_tokens(text)
    if tokens <= max_tokens:
        return TableCard(table.qualified_name, text, tokens)
    kept = [header]
    budget = max_tokens - estimate_tokens(header) - estimate_tokens(CUT_MARKER.format(n=len(lines)))
    for line in lines:
        cost = estimate_tokens(line) + 1
        if cost > budget:
            break
        kept.append(line)
        budget -= cost
    kept.append(CUT_MARKER.format(n=len(lines) - (len(kept) - 1)))
    text = "\n".join(kept)
    return TableCard(table.qualified_name, text, estimate_tokens(text), cut=True)
