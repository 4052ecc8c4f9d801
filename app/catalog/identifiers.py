"""A table is (schema, table): its display name, the names clients write, and grant patterns.

A dotted string is ambiguous once a schema or table name holds a dot: ``a."b.x"`` and
``"a.b".x`` are different tables that both print as ``a.b.x``. So the service keeps the parts,
and where one string must name a table (answers, cards, the route log) it prints the parts in
an unambiguous form, SQL-style:

- a part is written as is, unless it holds a dot, a double quote, a glob character (``*``,
  ``?``, ``[``, ``]``) or is empty or padded with spaces: then it is double-quoted, a double
  quote inside doubled (``"a.b"``; a name ``x"y`` is written ``"x""y"``);
- the parts are joined by ``.``: ``public.orders``, ``"a.b".x``, ``a."b.x"``. A table without a
  schema (SQLite) is its table part alone. Ordinary names print exactly as ``schema.table``.

Grant patterns use the same syntax with a glob per part (``fnmatch``: ``*``, ``?``, ``[seq]``,
``[!seq]``) matched against that part alone, so a ``*`` never crosses a dot: ``public.*`` is
every table of schema ``public`` and none of schema ``public.hidden``. A quoted part is
literal, glob characters included: ``"p*".*`` is every table of the schema named ``p*``.
A pattern of one part matches tables without a schema, except ``*`` alone: every table.
Matching is case-sensitive, against the names as the warehouse stores them (PostgreSQL
folds unquoted names to lower case when they are created).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import lru_cache

__all__ = [
    "ALL_TABLES",
    "NameSyntaxError",
    "TablePattern",
    "display_name",
    "parse_name",
    "parse_pattern",
    "parts_of",
    "quote_part",
    "unquote_schema",
]

ALL_TABLES = "*"
_NEEDS_QUOTES = re.compile(r'[."*?\[\]]|^\s|\s$|^$')


class NameSyntaxError(ValueError):
    """A table name or pattern that does not parse (an open quote, too many parts, an empty part)."""


@lru_cache(maxsize=65536)  # every table's name is printed on many paths (cards, grants, answers)
def quote_part(part: str) -> str:
    """One part as the display form writes it: as is, or double-quoted when it needs to be."""
    if _NEEDS_QUOTES.search(part):
        return '"' + part.replace('"', '""') + '"'
    return part


def display_name(schema: str | None, table: str) -> str:
    """The unambiguous name of the table (schema, table): ``public.orders``, ``"a.b".x``."""
    return f"{quote_part(schema)}.{quote_part(table)}" if schema else quote_part(table)


def _split(text: str) -> list[tuple[str, bool]]:
    """``text`` cut at its unquoted dots: each part and whether it was quoted."""
    parts: list[tuple[str, bool]] = []
    i, n = 0, len(text)
    while True:
        if i < n and text[i] == '"':
            chars: list[str] = []
            i += 1
            while True:
                end = text.find('"', i)
                if end < 0:
                    raise NameSyntaxError(f"{text!r}: a double quote is not closed")
                chars.append(text[i:end])
                if text[end + 1 : end + 2] == '"':
                    chars.append('"')
                    i = end + 2
                    continue
                i = end + 1
                break
            parts.append(("".join(chars), True))
        else:
            end = text.find(".", i)
            end = n if end < 0 else end
            part = text[i:end]
            if not part or '"' in part:
                raise NameSyntaxError(f"{text!r}: an empty part, or a quote inside an unquoted part")
            parts.append((part, False))
            i = end
        if i == n:
            return parts
        if text[i] != ".":
            raise NameSyntaxError(f"{text!r}: a quoted part must be followed by '.' or end the name")
        i += 1


def parse_name(text: str) -> tuple[str | None, str]:
    """A name as a client writes it (the display form) → (schema or None, table).

    ``a.b.c`` (three unquoted parts) is refused as ambiguous: quote the part with the dot.
    """
    parts = _split(text)
    if len(parts) > 2:  # schema and table
        raise NameSyntaxError(f"{text!r}: more than two parts; double-quote a name that holds a dot")
    if len(parts) == 1:
        return None, parts[0][0]
    return parts[0][0], parts[1][0]


def parts_of(name: str) -> tuple[str | None, str]:
    """The parts of a display name the service printed; an older, unparsable one read as schema.table."""
    try:
        return parse_name(name)
    except NameSyntaxError:
        schema, dot, table = name.rpartition(".")
        return (schema, table) if dot and schema and table else (None, name)


def unquote_schema(text: str) -> str:
    """A schema as a client writes it: a double-quoted name unquoted, anything else as written."""
    if text.startswith('"'):
        try:
            parts = _split(text)
        except NameSyntaxError:
            return text
        if len(parts) == 1:
            return parts[0][0]
    return text


def _glob(part: str, quoted: bool) -> str:
    # A quoted part is literal: each glob character becomes a one-character set of itself.
    return re.sub(r"([*?\[])", r"[\1]", part) if quoted else part


@dataclass(frozen=True, slots=True)
class TablePattern:
    """A grant pattern: a glob per part (schema None: tables without a schema)."""

    schema: str | None
    table: str
    everything: bool = False

    def sees(self, schema: str | None, table: str) -> bool:
        """Whether the table (schema, table) matches this pattern, part by part."""
        if self.everything:
            return True
        if (schema is None) != (self.schema is None):
            return False
        return fnmatchcase(table, self.table) and (schema is None or fnmatchcase(schema, self.schema or ""))


@lru_cache(maxsize=4096)  # a key's few patterns, checked against every table of a listing
def parse_pattern(text: str) -> TablePattern:
    """A grant pattern (``public.*``, ``"a.b".x``, ``"p*".*``, ``*``) → its per-part globs."""
    if text == ALL_TABLES:
        return TablePattern(None, ALL_TABLES, everything=True)
    parts = _split(text)
    if len(parts) > 2:  # schema and table
        raise NameSyntaxError(f"{text!r}: more than two parts; double-quote a name that holds a dot")
    globs = [_glob(part, quoted) for part, quoted in parts]
    return TablePattern(None, globs[0]) if len(globs) == 1 else TablePattern(globs[0], globs[1])
