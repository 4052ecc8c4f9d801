"""Tables of the service's own store. Alembic migrations (``migrations/``) create them.

Six tables: ``catalog_snapshot`` (one immutable catalog per source and content hash),
``route_log`` (one row per route answered, with the API key that asked), ``route_feedback``
(the tables a route's final SQL really used, at most one row per route) and ``api_key`` (the
keys, stored as SHA-256 digests, with their grants and limits), ``route_memory`` (questions and
the tables they used, per source) and ``mined_join`` (join conditions read from SQL). Constraint
names follow a naming convention so migrations can name what they drop; datetimes are
timezone-aware (UTC) on every backend.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = [
    "ApiKey",
    "Base",
    "CatalogSnapshot",
    "MemoryEntry",
    "MinedJoin",
    "RouteFeedback",
    "RouteLog",
    "UTCDateTime",
]

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# JSONB on PostgreSQL (compact, TOAST-compressed); JSON text elsewhere.
JSONDocument = sa.JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A timezone-aware datetime, stored in UTC; SQLite (no zone support) gets UTC back too."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored: give a timezone")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime}


class CatalogSnapshot(Base):
    """One source's catalog at one content version; ``confirmed_at`` moves, the content never."""

    __tablename__ = "catalog_snapshot"
    __table_args__ = (
        sa.UniqueConstraint("source", "version"),
        sa.Index(None, "source", "confirmed_at"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True)
    source: Mapped[str] = mapped_column(sa.String(200))
    version: Mapped[str] = mapped_column(sa.String(64))
    table_count: Mapped[int]
    content: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    created_at: Mapped[datetime]
    # When an introspection last found the warehouse matching this content.
    confirmed_at: Mapped[datetime]


class RouteLog(Base):
    """One answered route: the question, what it was routed over, the ranked answer and how sure it was."""

    __tablename__ = "route_log"
    __table_args__ = (sa.Index(None, "source", "catalog_version"),)

    route_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(index=True)
    source: Mapped[str] = mapped_column(sa.String(200))
    catalog_version: Mapped[str] = mapped_column(sa.String(64))
    judge: Mapped[str] = mapped_column(sa.String(200))
    program_version: Mapped[str | None] = mapped_column(sa.String(64))
    question: Mapped[str] = mapped_column(sa.Text)
    top_k: Mapped[int]
    min_score: Mapped[float]
    schemas: Mapped[list[str] | None] = mapped_column(JSONDocument)
    tables: Mapped[list[dict[str, Any]]] = mapped_column(JSONDocument)
    stats: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    # The API key that asked (null: auth off, or a route logged before keys existed).
    key_id: Mapped[str | None] = mapped_column(sa.String(32), index=True)
    # How sure and how complete the answer was; null on routes logged before these were kept
    # (coverage is null for the lexical judge too). Columns, since operators filter on them.
    coverage: Mapped[float | None]
    partial: Mapped[bool | None]
    # The rest of how complete it was, read with the route (app.store.records.RouteOutcome).
    outcome: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument)

    feedback: Mapped[RouteFeedback | None] = relationship(back_populates="route", lazy="raise")


class RouteFeedback(Base):
    """The tables the final SQL of a route really used, as the frontend reported them."""

    __tablename__ = "route_feedback"

    route_id: Mapped[str] = mapped_column(
        sa.String(64), sa.ForeignKey("route_log.route_id", ondelete="CASCADE"), primary_key=True
    )
    created_at: Mapped[datetime] = mapped_column(index=True)
    used_tables: Mapped[list[str]] = mapped_column(JSONDocument)
    sql: Mapped[str | None] = mapped_column(sa.Text)

    route: Mapped[RouteLog] = relationship(back_populates="feedback", lazy="raise")


class ApiKey(Base):
    """An API key: only the SHA-256 digest of its secret is kept, and a prefix to recognise it."""

    __tablename__ = "api_key"

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    prefix: Mapped[str] = mapped_column(sa.String(16))
    secret_sha256: Mapped[str] = mapped_column(sa.String(64), unique=True)
    # {source: [grant pattern: a glob per part, schema.table (app.catalog.identifiers), ...]}
    grants: Mapped[dict[str, list[str]]] = mapped_column(JSONDocument)
    admin: Mapped[bool]
    rate_limit: Mapped[int | None]
    daily_tokens: Mapped[int | None]
    daily_usd: Mapped[float | None]
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class MemoryEntry(Base):
    """A remembered use: a question (or a bare SQL of a query log) and the tables it used."""

    __tablename__ = "route_memory"
    __table_args__ = (sa.Index(None, "source", "id"),)

    id: Mapped[int] = mapped_column(
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    source: Mapped[str] = mapped_column(sa.String(200))
    # None: a query-log SQL without a question, kept for which tables are used together.
    question: Mapped[str | None] = mapped_column(sa.Text)
    tables: Mapped[list[str]] = mapped_column(JSONDocument)
    origin: Mapped[str] = mapped_column(sa.String(16))  # feedback, import or log
    # Feedback's route: feedback sent again replaces its entry.
    route_id: Mapped[str | None] = mapped_column(sa.String(64), unique=True)
    catalog_version: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(index=True)


class MinedJoin(Base):
    """A join condition read from SQL (feedback or an import), counted; the table order is sorted."""

    __tablename__ = "mined_join"
    __table_args__ = (
        # Named by hand: the convention's name would pass PostgreSQL's 63 characters.
        sa.UniqueConstraint(
            "source", "left_table", "left_column", "right_table", "right_column", name="uq_mined_join_edge"
        ),
    )

    id: Mapped[int] = mapped_column(
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    source: Mapped[str] = mapped_column(sa.String(200))
    left_table: Mapped[str] = mapped_column(sa.String(400))
    left_column: Mapped[str] = mapped_column(sa.String(200))
    right_table: Mapped[str] = mapped_column(sa.String(400))
    right_column: Mapped[str] = mapped_column(sa.String(200))
    count: Mapped[int]
    updated_at: Mapped[datetime]
