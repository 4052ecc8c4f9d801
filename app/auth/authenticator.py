"""Bearer token → ``Principal``: the static admin key, or a stored key, cached in process.

A looked-up key (or the absence of one) is trusted for ``key_cache_s`` seconds, so a route
does not cost a store query; a key revoked through the CLI or another replica therefore stops
working within that time, and one revoked through this process's API at once (``forget``).
Unknown tokens are cached too, in a table of their own (bounded), so a flood of made-up keys
neither becomes a flood of store queries nor pushes real keys out of the cache.

While the store is down a key verified before keeps working: its entry outlives its TTL until
the store answers again, and is then checked again (so a revocation made meanwhile applies
on its first request after the outage). A token never verified cannot be checked and gets a
``KeyNotCheckableError`` error (503), not a 401. While the store is known to be down (``StoreHealth``)
an expired entry is served at once, without a look-up that would only fail or time out.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import TypeVar

from app.auth.key_repository import KeyRecord
from app.auth.keys import KEY_PREFIX, MAX_KEY_CHARS, digest
from app.auth.principal import STATIC_ADMIN_ID, Principal
from app.observability.metrics import STALE_KEYS
from app.store.health import STORE_ERRORS, StoreHealth

__all__ = ["Authenticator", "KeyNotCheckableError", "principal_of"]

log = logging.getLogger(__name__)
CACHE_ENTRIES = 10_000

_V = TypeVar("_V")
LookUp = Callable[[str], Awaitable[KeyRecord | None]]


class KeyNotCheckableError(Exception):
    """The store is down and the token was not verified before: it cannot be checked now."""


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


def _remember(cache: OrderedDict[str, tuple[_V, float]], key: str, value: _V, expires: float) -> None:
    cache[key] = (value, expires)
    cache.move_to_end(key)
    while len(cache) > CACHE_ENTRIES:
        cache.popitem(last=False)


class Authenticator:
    """Finds the principal of a bearer token."""

    def __init__(
        self,
        look_up: LookUp,
        static_admin_key: str | None,
        cache_s: float,
        health: StoreHealth | None = None,
        look_up_timeout_s: float = 2.0,
    ) -> None:
        self._look_up = look_up
        self._admin_digest = digest(static_admin_key).encode() if static_admin_key else None
        self._cache_s = cache_s
        self._health = health
        self._timeout_s = look_up_timeout_s
        # digest → (principal, monotonic time it expires); kept past expiry for store outages
        self._known: OrderedDict[str, tuple[Principal, float]] = OrderedDict()
        # digest → (None, monotonic time it expires): tokens the store did not know
        self._unknown: OrderedDict[str, tuple[None, float]] = OrderedDict()

    @property
    def has_static_admin(self) -> bool:
        """A static admin key is configured: it works whatever the store does."""
        return self._admin_digest is not None

    @property
    def verified_keys(self) -> int:
        """Stored keys this process has verified (they keep working through a store outage)."""
        return len(self._known)

    async def principal(self, token: str) -> Principal | None:
        """The principal of ``token``, or None for an unknown, revoked or malformed key.

        Raises ``KeyNotCheckableError`` when the store cannot be asked and the token is not cached.
        """
        if not token or len(token) > MAX_KEY_CHARS:
            return None
        token_digest = digest(token)
        # Digests compared in constant time: equal length, and nothing to learn from the timing.
        if self._admin_digest is not None and hmac.compare_digest(token_digest.encode(), self._admin_digest):
            return Principal(key_id=STATIC_ADMIN_ID, name="static admin key", admin=True, limited=False)
        now = time.monotonic()
        unknown = self._unknown.get(token_digest)
        if not token.startswith(KEY_PREFIX) or (unknown is not None and unknown[1] > now):
            return None
        known = self._known.get(token_digest)
        if known is not None and known[1] > now:
            return known[0]
        stale = None if known is None else known[0]
        if self._health is not None and not self._health.up:
            # Known down: the probe tells when it is back; a look-up now would only fail or hang.
            return self._stale(stale)
        return await self._ask_store(token, token_digest, stale, now)

    async def _ask_store(
        self, token: str, token_digest: str, stale: Principal | None, now: float
    ) -> Principal | None:
        """Look ``token`` up and cache the answer; ``stale`` (verified before) if the store fails."""
        try:
            async with asyncio.timeout(self._timeout_s):
                record = await self._look_up(token)
        except STORE_ERRORS as exc:
            if self._health is not None:
                self._health.failed(exc)
            return self._stale(stale)
        if self._health is not None:
            self._health.answered()
        self._unknown.pop(token_digest, None)
        if record is None:
            self._known.pop(token_digest, None)  # revoked meanwhile: not even an outage brings it back
            if self._cache_s > 0:
                _remember(self._unknown, token_digest, None, now + self._cache_s)
            return None
        principal = principal_of(record)
        # Kept even with a TTL of 0: the entry is what lets this key through a store outage.
        _remember(self._known, token_digest, principal, now + self._cache_s)
        return principal

    @staticmethod
    def _stale(principal: Principal | None) -> Principal:
        """``principal`` let in on its earlier check while the store is down; without one, refused."""
        if principal is None:
            raise KeyNotCheckableError("the store is down and the key was not verified before")
        STALE_KEYS.inc()
        return principal

    def forget(self, key_id: str) -> None:
        """Drop ``key_id`` from the cache (it was revoked here): its next request asks the store."""
        stale = [d for d, (p, _) in self._known.items() if p.key_id == key_id]
        for token_digest in stale:
            del self._known[token_digest]
