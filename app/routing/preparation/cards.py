"""Table cards: the compact text an LM reads about one table.

Card format (a contract with the LM simulator, which parses it):

    ### sales.orders [view] "One row per customer order"
    id integer PK, customer_id integer FK sales.customers.id, note text "free text from the clerk"

The header line starts with ``### `` and the qualified name; the next line lists the columns,
comma-separated, each with its type, its key (PK, FK and the column it references) and its
comment. Evidence against a table follows its kind in brackets: ``[copy of sales.orders]``,
``[name reads as a copy]``, ``[empty]`` (``app.catalog.copies``). Nullability is left out: it
never decides whether a query reads a table, and it cost one token a column (a card of
Spider's averages 37 tokens this way, 46 with a line per column
and null markers; a route judges every card twice). Warehouse comments are
untrusted: they are JSON-quoted (control and invisible format characters removed), so a
comment can never start a line, fake a header or close the quote, and the judge's
instructions tell the LM they are data. A comment that reads as instructions to the LM is
left out of the card altogether and the card says so in ``quarantined``
(``app.routing.preparation.metadata_guard``). A name that is not a plain identifier (spaces, quotes,
control characters) is JSON-quoted too, so it cannot break the card's lines either; a name
that reads as instructions marks the card ``distrusted``.

Cards are compact (fewer tokens per table, so fewer chunks and LM calls; same information):
types in their short spelling (``timestamp``, not ``timestamp without time zone``), and a
column comment whose every word is already in the column's name or FK target (``customer_id
... FK s.customers.id "References customers"``) is left out.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from functools import lru_cache

from app.catalog.model import Table
from app.catalog.visible_text import normalised
from app.routing.preparation.lexical import words
from app.routing.preparation.metadata_guard import instruction_like, instruction_like_name, steering_hints

CARD_HEADER = "### "
CUT_MARKER = "… (card cut: {n} more columns)"
COLUMN_SEPARATOR = ", "
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
    # What was left out because it reads as instructions to the LM ("comment", "column x comment").
    quarantined: tuple[str, ...] = ()
    # The table's or a column's name reads as instructions: the LM's verdict on it is not trusted.
    distrusted: bool = False
    # When a comment shows steering hints (``metadata_guard.steering_hints``): the card without
    # its comments, on which a table selected beside this card must be selected again.
    bare: str | None = None


def estimate_tokens(text: str) -> int:
    """Estimated tokens of ``text`` (never below 1)."""
    return max(1, (len(text) + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN)


_SHORT_TYPES = (
    (re.compile(r"\bcharacter varying\b"), "varchar"),
    (re.compile(r"\bcharacter\b"), "char"),
    (re.compile(r"\bdouble precision\b"), "double"),
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


_PLAIN_NAME = re.compile(r"[\w$#@.-]+")


def card_name(name: str) -> str:
    """A table or column name as a card shows it: as is when plain, else as a JSON string."""
    return name if _PLAIN_NAME.fullmatch(name) else json.dumps(name, ensure_ascii=False)


def shown_comment(comment: str | None) -> str | None:
    """A warehouse comment normalised (``visible_text.normalised``: one line, NFKC, control and
    format characters gone), shortened; None if empty.

    The text a card quotes, and the text the route's schema detail gives a frontend: the text the
    metadata guard checked.
    """
    if not comment or not comment.strip():
        return None
    text = normalised(comment)
    if not text:
        return None
    if len(text) > MAX_COMMENT_CHARS:
        text = text[: MAX_COMMENT_CHARS - 1] + "…"
    return text


@lru_cache(maxsize=65536)  # comments repeat across a warehouse's tables
def quote(comment: str | None) -> str:
    """A warehouse comment as a one-line JSON string, shortened, or nothing."""
    text = shown_comment(comment)
    return "" if text is None else " " + json.dumps(text, ensure_ascii=False)


def _guarded(comment: str | None, what: str, quarantined: list[str]) -> str | None:
    """``comment``, or None (noted in ``quarantined``) when it reads as instructions to the LM."""
    if instruction_like(comment):
        quarantined.append(what)
        return None
    return comment


def _column_entries(table: Table, quarantined: list[str]) -> list[str]:
    pk = set(table.primary_key)
    fk_of: dict[str, str] = {}
    for fk in table.foreign_keys:
        for fk_col, ref in zip(fk.columns, fk.ref_columns, strict=False):
            fk_of[fk_col] = card_name(f"{fk.ref_table}.{ref}")
    lines = []
    for col in table.columns:
        col_type = short_type(col.type)
        name = card_name(col.name)
        # SQLite reports no type for view columns (SQLAlchemy's NullType): say nothing then.
        parts = [f"{name} {col_type}" if col_type != "nulltype" else name]
        if col.name in pk:
            parts.append("PK")
        target = fk_of.get(col.name)
        if target is not None:
            parts.append(f"FK {target}")
        # The FK marker already says "references", plus whatever the target's name says.
        known = f"{col.name} {target} references refers foreign key" if target else col.name
        comment = _guarded(col.comment, f"column {col.name} comment", quarantined)
        comment = comment if _says_more(comment, known) else None
        lines.append(" ".join(parts) + quote(comment))
    return lines


def _distrusted(table: Table) -> bool:
    return instruction_like_name(table.name) or any(instruction_like_name(c.name) for c in table.columns)


# A compact card names at most this many columns: a first pass asks "could this table matter?".
MAX_COMPACT_COLUMNS = 40


def compact_card(table: Table) -> TableCard:
    """The table's qualified name and its column names: the first pass's card.

    No types, keys or comments: about half a full card's tokens, for a pass over a large catalog
    that only decides which tables get full cards. (No comment, so nothing to guard.)
    """
    kind = " [view]" if table.kind == "view" else ""
    names = [card_name(c.name) for c in table.columns[:MAX_COMPACT_COLUMNS]]
    more = len(table.columns) - len(names)
    columns = COLUMN_SEPARATOR.join([*names, *([f"… ({more} more)"] if more > 0 else [])])
    text = f"{CARD_HEADER}{card_name(table.qualified_name)}{kind}\n{columns}"
    return TableCard(table.qualified_name, text, estimate_tokens(text), more > 0, (), _distrusted(table))


def _hinted(table: Table, names: frozenset[str]) -> bool:
    """Whether a comment the card shows carries steering hints (quarantined ones are not shown)."""
    comments = (table.comment, *(c.comment for c in table.columns))
    return any(steering_hints(c, table, names) and not instruction_like(c) for c in comments if c)


def _without_comments(table: Table) -> Table:
    columns = tuple(dataclasses.replace(c, comment=None) for c in table.columns)
    return dataclasses.replace(table, comment=None, columns=columns)


def make_card(
    table: Table, max_tokens: int, names: frozenset[str] = frozenset(), hint: str = ""
) -> TableCard:
    """The card of ``table``; a card over ``max_tokens`` is cut with a visible marker, never dropped.

    ``names`` are the catalog's table names (``metadata_guard.catalog_names``): a comment naming
    another table is a steering hint, and the card then carries its ``bare`` form. ``hint`` is
    evidence against the table the judge should see (``[copy of s.orders] [empty]``).
    """
    card = _card(table, max_tokens, hint)
    if not _hinted(table, names):
        return card
    return dataclasses.replace(card, bare=_card(_without_comments(table), max_tokens, hint).text)


def _card(table: Table, max_tokens: int, hint: str) -> TableCard:
    kind = " [view]" if table.kind == "view" else ""
    kind += f" {hint}" if hint else ""
    quarantined: list[str] = []
    comment = _guarded(table.comment, "comment", quarantined)
    header = f"{CARD_HEADER}{card_name(table.qualified_name)}{kind}{quote(comment)}"
    columns = _column_entries(table, quarantined)
    text = "\n".join([header, COLUMN_SEPARATOR.join(columns)]) if columns else header
    tokens = estimate_tokens(text)
    flagged, distrusted = tuple(quarantined), _distrusted(table)
    if tokens <= max_tokens:
        return TableCard(table.qualified_name, text, tokens, False, flagged, distrusted)
    kept: list[str] = []
    budget = max_tokens - estimate_tokens(header) - estimate_tokens(CUT_MARKER.format(n=len(columns)))
    for column in columns:
        cost = estimate_tokens(column + COLUMN_SEPARATOR)
        if cost > budget:
            break
        kept.append(column)
        budget -= cost
    kept.append(CUT_MARKER.format(n=len(columns) - len(kept)))
    text = "\n".join([header, COLUMN_SEPARATOR.join(kept)])
    return TableCard(table.qualified_name, text, estimate_tokens(text), True, flagged, distrusted)
