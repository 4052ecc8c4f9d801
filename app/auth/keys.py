"""API key secrets and grant specs: how a key looks, how it is stored, how a grant is written.

A key is ``trk_`` and 43 URL-safe characters (32 random bytes). The store keeps only its
SHA-256 digest (a key is looked up by digest, so there is nothing to compare character by
character) and its first characters, to recognise it in ``keys list``.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Collection, Mapping

from app.catalog.identifiers import NameSyntaxError, parse_pattern

__all__ = [
    "KEY_PREFIX",
    "GrantSpecError",
    "digest",
    "display_prefix",
    "grant_problem",
    "new_key_id",
    "new_secret",
    "parse_grant",
]

KEY_PREFIX = "trk_"
DISPLAY_CHARS = 12
# Longer than any key this service makes: a longer bearer token is rejected without hashing.
MAX_KEY_CHARS = 256


class GrantSpecError(ValueError):
    """A grant spec that does not read as ``SOURCE[:PATTERN,...]``."""


def new_secret() -> str:
    """A new API key: the prefix and 256 random bits."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def new_key_id() -> str:
    """A new key id (public: it names the key in lists, logs and the route log)."""
    return "key_" + secrets.token_hex(6)


def digest(secret: str) -> str:
    """The SHA-256 hex digest the store keeps of ``secret``."""
    return hashlib.sha256(secret.encode()).hexdigest()


def display_prefix(secret: str) -> str:
    """The first characters of a key, enough to tell keys apart, useless to guess one."""
    return secret[:DISPLAY_CHARS]


def parse_grant(spec: str) -> tuple[str, list[str]]:
    """A ``--source`` spec as (source, patterns).

    ``sales`` → (sales, [*]); ``sales:public.*,x.fact_*`` → (sales, [public.*, x.fact_*]).
    """
    source, sep, rest = spec.partition(":")
    source = source.strip()
    if not source:
        raise GrantSpecError(f"grant {spec!r}: no source name before ':'")
    if not sep:
        return source, ["*"]
    patterns = [p.strip() for p in rest.split(",") if p.strip()]
    if not patterns:
        raise GrantSpecError(f"grant {spec!r}: no table pattern after ':'")
    for pattern in patterns:
        try:
            parse_pattern(pattern)
        except NameSyntaxError as exc:
            raise GrantSpecError(f"grant {spec!r}: pattern {exc}") from exc
    return source, patterns


def grant_problem(grants: Mapping[str, object], *, admin: bool, sources: Collection[str]) -> str | None:
    """Why a new key's grants are refused, or None.

    A key that may see nothing is a mistake nobody notices until its routes fail, and a grant on
    a source the service lacks (a typo) silently grants nothing; both are refused when made.
    """
    if not grants and not admin:
        return "a key that is not an admin key needs a grant on at least one source"
    unknown = sorted(set(grants) - set(sources))
    if unknown:
        return f"grants name unknown sources {unknown}; known: {sorted(sources)}"
    for patterns in grants.values():
        for pattern in patterns if isinstance(patterns, list) else ():
            try:
                parse_pattern(str(pattern))
            except NameSyntaxError as exc:
                return f"grant pattern {exc} (see docs/security.md#grant-patterns)"
    return None
