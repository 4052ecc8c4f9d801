"""Strings a store cannot hold, made storable: NUL characters replaced before a row is written.

PostgreSQL refuses NUL in ``text`` and ``\\u0000`` in ``jsonb``, and one such string fails the
whole multi-row insert it is in. The edge refuses control characters in request bodies, but a
route's record also carries what the warehouse and the LM said, so the writer cleans every row.
"""

from __future__ import annotations

from typing import Any

__all__ = ["NUL_STANDIN", "without_nul"]

# Visible in the log where a NUL was, rather than silently gone.
NUL_STANDIN = "\ufffd"


def without_nul(value: Any) -> Any:
    """``value`` with NUL replaced in every string it holds (dict keys, lists, nested)."""
    if isinstance(value, str):
        return value.replace("\x00", NUL_STANDIN) if "\x00" in value else value
    if isinstance(value, dict):
        return {without_nul(k): without_nul(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [without_nul(v) for v in value]
    return value
