"""How sure and how complete each logged route was: coverage, partial, and the rest as a document.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _lock_timeout() -> None:
    # Never queue behind a long transaction holding a lock (and block every query behind us).
    if op.get_bind().dialect.name == "postgresql":
        op.execute("SET LOCAL lock_timeout = '5s'")


def upgrade() -> None:
    _lock_timeout()
    # Nullable columns without defaults: metadata-only on PostgreSQL, no rewrite of a route log
    # that may hold millions of rows. Null is what a route logged before this says: not known.
    # coverage and partial are columns because operators filter on them (coverage < 0.9, partial
    # routes); the lists and reasons, read with the route and not filtered on, are one document.
    with op.batch_alter_table("route_log") as batch:
        batch.add_column(sa.Column("coverage", sa.Double(), nullable=True))
        batch.add_column(sa.Column("partial", sa.Boolean(), nullable=True))
        batch.add_column(sa.Column("outcome", JSON_DOCUMENT, nullable=True))


def downgrade() -> None:
    _lock_timeout()
    with op.batch_alter_table("route_log") as batch:
        batch.drop_column("outcome")
        batch.drop_column("partial")
        batch.drop_column("coverage")
