"""The route memory (questions and the tables they used, per source) and joins mined from SQL.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
UTC_DATETIME = sa.DateTime(timezone=True)
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _lock_timeout() -> None:
    # Never queue behind a long transaction holding a lock (and block every query behind us).
    if op.get_bind().dialect.name == "postgresql":
        op.execute("SET LOCAL lock_timeout = '5s'")


def upgrade() -> None:
    _lock_timeout()
    op.create_table(
        "route_memory",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("question", sa.Text(), nullable=True),
        sa.Column("tables", JSON_DOCUMENT, nullable=False),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.Column("route_id", sa.String(length=64), nullable=True),
        sa.Column("catalog_version", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_route_memory")),
        sa.UniqueConstraint("route_id", name=op.f("uq_route_memory_route_id")),
    )
    op.create_index(op.f("ix_route_memory_source_id"), "route_memory", ["source", "id"])
    op.create_index(op.f("ix_route_memory_created_at"), "route_memory", ["created_at"])
    op.create_table(
        "mined_join",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("left_table", sa.String(length=400), nullable=False),
        sa.Column("left_column", sa.String(length=200), nullable=False),
        sa.Column("right_table", sa.String(length=400), nullable=False),
        sa.Column("right_column", sa.String(length=200), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mined_join")),
        sa.UniqueConstraint(
            "source",
            "left_table",
            "left_column",
            "right_table",
            "right_column",
            name="uq_mined_join_edge",
        ),
    )


def downgrade() -> None:
    _lock_timeout()
    op.drop_table("mined_join")
    op.drop_index(op.f("ix_route_memory_created_at"), table_name="route_memory")
    op.drop_index(op.f("ix_route_memory_source_id"), table_name="route_memory")
    op.drop_table("route_memory")
