"""Table cards: the compact text an LM reads about one table.

Card format (a contract with the LM simulator, which parses it):

    ### sales.orders [view] "One row per customer order"
    - id integer PK
    - customer_id integer FK sales.customers.id
    - note text null "free text from the clerk"

The header line starts with ``### `` and the qualified name. Warehouse comments are
untrusted: they are JSON-quoted, so a comment can never start a line, fake a header or
close the quote, and the judge's instructions tell the LM they are data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from app.catalog.model import Table

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
        col_type = col.type.lower()
        # SQLite reports no type for view columns (SQLAlchemy's NullType): say nothing then.
        parts = [f"- {col.name} {col_type}" if col_type != "nulltype" else f"- {col.name}"]
        if col.name in pk:
            parts.append("PK")
        if col.name in fk_of:
            parts.append(f"FK {fk_of[col.name]}")
        if col.nullable and col.name not in pk:
            parts.append("null")
        lines.append(" ".join(parts) + quote(col.comment))
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
