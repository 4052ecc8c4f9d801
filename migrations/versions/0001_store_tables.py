"""The store's tables: catalog snapshots, route log, route feedback.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
UTC_DATETIME = sa.DateTime(timezone=True)


def _lock_timeout() -> None:
    # Never queue behind a long transaction holding a lock (and block every query behind us).
    if op.get_bind().dialect.name == "postgresql":
        op.execute("SET LOCAL lock_timeout = '5s'")


def upgrade() -> None:
    _lock_timeout()
    op.create_table(
        "catalog_snapshot",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("table_count", sa.Integer(), nullable=False),
        sa.Column("content", JSON_DOCUMENT, nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("confirmed_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalog_snapshot")),
        sa.UniqueConstraint("source", "version", name=op.f("uq_catalog_snapshot_source_version")),
    )
    op.create_index(
        op.f("ix_catalog_snapshot_source_confirmed_at"), "catalog_snapshot", ["source", "confirmed_at"]
    )
    op.create_table(
        "route_log",
        sa.Column("route_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("catalog_version", sa.String(length=64), nullable=False),
        sa.Column("judge", sa.String(length=200), nullable=False),
        sa.Column("program_version", sa.String(length=64), nullable=True),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("top_k", sa.Integer(), nullable=False),
        sa.Column("min_score", sa.Double(), nullable=False),
        sa.Column("schemas", JSON_DOCUMENT, nullable=True),
        sa.Column("tables", JSON_DOCUMENT, nullable=False),
        sa.Column("stats", JSON_DOCUMENT, nullable=False),
        sa.PrimaryKeyConstraint("route_id", name=op.f("pk_route_log")),
    )
    op.create_index(op.f("ix_route_log_created_at"), "route_log", ["created_at"])
    op.create_index(
        op.f("ix_route_log_source_catalog_version"), "route_log", ["source", "catalog_version"]
    )
    op.create_table(
        "route_feedback",
        sa.Column("route_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("used_tables", JSON_DOCUMENT, nullable=False),
        sa.Column("sql", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["route_id"],
            ["route_log.route_id"],
            name=op.f("fk_route_feedback_route_id_route_log"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("route_id", name=op.f("pk_route_feedback")),
    )
    op.create_index(op.f("ix_route_feedback_created_at"), "route_feedback", ["created_at"])


def downgrade() -> None:
    _lock_timeout()
    op.drop_table("route_feedback")
    op.drop_table("route_log")
    op.drop_table("catalog_snapshot")
