"""The API keys in the store: created, listed (never with secrets), revoked, looked up by digest."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from app.auth.keys import digest, display_prefix, new_key_id, new_secret
from app.store.database import Store
from app.store.models import ApiKey

__all__ = ["ApiKeyRepository", "KeyRecord", "NewKey"]


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A stored key, without its secret."""

    id: str
    name: str
    prefix: str
    grants: dict[str, list[str]]
    admin: bool
    rate_limit: int | None
    daily_tokens: int | None
    daily_usd: float | None
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class NewKey:
    """A key just created: the only time its secret is known."""

    record: KeyRecord
    secret: str


def _record(row: ApiKey) -> KeyRecord:
    return KeyRecord(
        id=row.id,
        name=row.name,
        prefix=row.prefix,
        grants=dict(row.grants),
        admin=row.admin,
        rate_limit=row.rate_limit,
        daily_tokens=row.daily_tokens,
        daily_usd=row.daily_usd,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


class ApiKeyRepository:
    """Reads and writes ``api_key``."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def create(
        self,
        name: str,
        grants: Mapping[str, Sequence[str]],
        *,
        admin: bool = False,
        rate_limit: int | None = None,
        daily_tokens: int | None = None,
        daily_usd: float | None = None,
    ) -> NewKey:
        """A new key with these grants and limits; its secret is returned once and never stored."""
        secret = new_secret()
        row = ApiKey(
            id=new_key_id(),
            name=name,
            prefix=display_prefix(secret),
            secret_sha256=digest(secret),
            grants={source: list(patterns) for source, patterns in grants.items()},
            admin=admin,
            rate_limit=rate_limit,
            daily_tokens=daily_tokens,
            daily_usd=daily_usd,
            created_at=datetime.now(UTC),
            revoked_at=None,
        )
        async with self._store.begin() as session:
            session.add(row)
        return NewKey(_record(row), secret)

    async def list_all(self, *, include_revoked: bool = True) -> list[KeyRecord]:
        """Every key, oldest first."""
        query = sa.select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)
        if not include_revoked:
            query = query.where(ApiKey.revoked_at.is_(None))
        async with self._store.begin() as session:
            return [_record(row) for row in await session.scalars(query)]

    async def by_secret(self, secret: str) -> KeyRecord | None:
        """The live (not revoked) key whose secret this is, or None."""
        query = sa.select(ApiKey).where(ApiKey.secret_sha256 == digest(secret), ApiKey.revoked_at.is_(None))
        async with self._store.begin() as session:
            row = await session.scalar(query)
            return None if row is None else _record(row)

    async def revoke(self, key_id: str) -> KeyRecord | None:
        """Revoke ``key_id`` (a revoked key stays listed); None when there is no such key."""
        async with self._store.begin() as session:
            row = await session.get(ApiKey, key_id)
            if row is None:
                return None
            if row.revoked_at is None:
                row.revoked_at = datetime.now(UTC)
            return _record(row)
