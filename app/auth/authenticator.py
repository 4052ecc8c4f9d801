"""Bearer token → ``Principal``: the static admin key, or a stored key, cached briefly in process.

A looked-up key (or the absence of one) is trusted for ``key_cache_s`` seconds, so a route
does not cost a store query; a key revoked through the CLI or another replica therefore stops
working within that time, and one revoked through this process's API at once (``forget``).
Unknown tokens are cached too (bounded), so a flood of made-up keys does not become a flood
of store queries.
"""

from __future__ import annotations

import hmac
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from app.auth.key_repository import KeyRecord
from app.auth.keys import KEY_PREFIX, MAX_KEY_CHARS, digest
from app.auth.principal import STATIC_ADMIN_ID, Principal

__all__ = ["Authenticator", "principal_of"]

CACHE_ENTRIES = 10_000

LookUp = Callable[[str], Awaitable[KeyRecord | None]]


def principal_of(record: KeyRecord) -> Principal:
    """The principal a stored key stands for."""
    grants = {source: tuple(patterns) for source, patterns in record.grants.items()}
    return Principal(
        key_id=record.id,
        name=record.name,
        admin=record.admin,
        grants=grants,
        rate_limit=record.rate_limit,
        daily_tokens=record.daily_tokens,
        daily_usd=record.daily_usd,
    )


class Authenticator:
    """Finds the principal of a bearer token."""

    def __init__(self, look_up: LookUp, static_admin_key: str | None, cache_s: float) -> None:
        self._look_up = look_up
        self._admin_digest = digest(static_admin_key).encode() if static_admin_key else None
        self._cache_s = cache_s
        # digest → (principal or None, monotonic time it expires)
        self._cache: OrderedDict[str, tuple[Principal | None, float]] = OrderedDict()

    async def principal(self, token: str) -> Principal | None:
        """The principal of ``token``, or None for an unknown, revoked or malformed key."""
        if not token or len(token) > MAX_KEY_CHARS:
            return None
        token_digest = digest(token)
        # Digests compared in constant time: equal length, and nothing to learn from the timing.
        if self._admin_digest is not None and hmac.compare_digest(token_digest.encode(), self._admin_digest):
            return Principal(key_id=STATIC_ADMIN_ID, name="static admin key", admin=True, limited=False)
        if not token.startswith(KEY_PREFIX):
            return None
        now = time.monotonic()
        cached = self._cache.get(token_digest)
        if cached is not None and cached[1] > now:
            return cached[0]
        record = await self._look_up(token)
        principal = None if record is None else principal_of(record)
        if self._cache_s > 0:
            self._cache[token_digest] = (principal, now + self._cache_s)
            self._cache.move_to_end(token_digest)
            while len(self._cache) > CACHE_ENTRIES:
                self._cache.popitem(last=False)
        return principal

    def forget(self, key_id: str) -> None:
        """Drop ``key_id`` from the cache (it was revoked here): its next request asks the store."""
        stale = [d for d, (p, _) in self._cache.items() if p is not None and p.key_id == key_id]
        for token_digest in stale:
            del self._cache[token_digest]
