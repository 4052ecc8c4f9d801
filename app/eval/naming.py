"""Names in the warehouse: schema, table and column names fitted to the database's identifier rules.

PostgreSQL keeps 63 bytes of an identifier and silently cuts the rest, so two long names
sharing a prefix would collide. A name over the limit becomes its first bytes, ``_`` and
8 hex digits of its hash; every such change is recorded as a ``Renamed`` for the report.
Names stay unique case-insensitively within their namespace (gold SQL is case-insensitive).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

__all__ = ["PG_MAX_IDENTIFIER_BYTES", "Namespace", "Renamed", "fit_identifier"]

PG_MAX_IDENTIFIER_BYTES = 63
_HASH_CHARS = 8


@dataclass(frozen=True, slots=True)
class Renamed:
    """A name the warehouse could not take as it was."""

    kind: str  # "schema", "table" or "column"
    db_id: str
    original: str  # for a column: "table.column"
    name: str
    reason: str


def fit_identifier(name: str, max_bytes: int | None) -> str:
    """``name`` itself when it fits in ``max_bytes`` (None: no limit), else a cut name with a hash."""
    raw = name.encode()
    if max_bytes is None or len(raw) <= max_bytes:
        return name
    digest = hashlib.sha1(raw, usedforsecurity=False).hexdigest()[:_HASH_CHARS]
    head = raw[: max_bytes - _HASH_CHARS - 1].decode("utf-8", errors="ignore")
    return f"{head}_{digest}"


class Namespace:
    """Names handed out in one namespace (the schemas, one schema's tables, one table's columns)."""

    def __init__(self, max_bytes: int | None) -> None:
        self._max_bytes = max_bytes
        self._taken: set[str] = set()

    def take(self, wanted: str) -> tuple[str, str | None]:
        """A unique name for ``wanted`` and why it differs (None when it does not)."""
        name = fit_identifier(wanted, self._max_bytes)
        reason = f"longer than {self._max_bytes} bytes" if name != wanted else None
        number = 1
        while name.casefold() in self._taken:
            number += 1
            suffix = f"_{number}"
            name = fit_identifier(wanted, None if self._max_bytes is None else self._max_bytes - len(suffix))
            name += suffix
            reason = "duplicate name" if reason is None else f"{reason}; duplicate after cutting"
        self._taken.add(name.casefold())
        return name, reason
