"""The caller of a request, as its API key describes it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["ANONYMOUS", "STATIC_ADMIN_ID", "Principal"]

# The key id the routes of the static admin key (TABLEROUTER_ADMIN_KEY) are logged under.
STATIC_ADMIN_ID = "admin"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who asks: a key's id, whether it is an admin, its grants and its limits.

    ``grants`` maps each granted source to grant patterns (a glob per part, app.catalog.identifiers);
    an admin sees every source and every table whatever its grants say. ``None`` limits are
    the service's defaults; 0 is unlimited. ``daily_usd`` is dollars at the configured LM prices.
    """

    key_id: str | None
    name: str
    admin: bool = False
    grants: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    rate_limit: int | None = None
    daily_tokens: int | None = None
    daily_usd: float | None = None
    limited: bool = True  # the static admin key and auth off are never rate-limited

    def sees_source(self, source: str) -> bool:
        """Whether any table of ``source`` may be visible to this key."""
        return self.admin or source in self.grants

    def patterns(self, source: str) -> tuple[str, ...] | None:
        """The table patterns of ``source`` for this key; None: every table."""
        return None if self.admin else self.grants.get(source, ())

    def owns(self, key_id: str | None) -> bool:
        """Whether a route logged under ``key_id`` is this key's to read (an admin reads all)."""
        return self.admin or (key_id is not None and key_id == self.key_id)


# Every request when TABLEROUTER_AUTH is off: sees everything, spends without limit.
ANONYMOUS = Principal(key_id=None, name="anonymous (auth off)", admin=True, limited=False)
