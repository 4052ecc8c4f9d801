"""API keys, and the key that asked for each logged route.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
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
        "api_key",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("secret_sha256", sa.String(length=64), nullable=False),
        sa.Column("grants", JSON_DOCUMENT, nullable=False),
        sa.Column("admin", sa.Boolean(), nullable=False),
        sa.Column("rate_limit", sa.Integer(), nullable=True),
        sa.Column("daily_tokens", sa.Integer(), nullable=True),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("revoked_at", UTC_DATETIME, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_key")),
        sa.UniqueConstraint("secret_sha256", name=op.f("uq_api_key_secret_sha256")),
    )
    # A nullable column without a default: a metadata-only change on PostgreSQL, no table rewrite.
    with op.batch_alter_table("route_log") as batch:
        batch.add_column(sa.Column("key_id", sa.String(length=32), nullable=True))
    op.create_index(op.f("ix_route_log_key_id"), "route_log", ["key_id"])


def downgrade() -> None:
    _lock_timeout()
    op.drop_index(op.f("ix_route_log_key_id"), table_name="route_log")
    with op.batch_alter_table("route_log") as batch:
        batch.drop_column("key_id")
    op.drop_table("api_key")
