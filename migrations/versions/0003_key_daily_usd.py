"""A key's daily budget in dollars (at the configured LM prices), beside its daily tokens.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _lock_timeout() -> None:
    # Never queue behind a long transaction holding a lock (and block every query behind us).
    if op.get_bind().dialect.name == "postgresql":
        op.execute("SET LOCAL lock_timeout = '5s'")


def upgrade() -> None:
    _lock_timeout()
    # A nullable column without a default: a metadata-only change on PostgreSQL, no table rewrite;
    # null is the service default (TABLEROUTER_KEY_DAILY_USD), as for the other limits.
    with op.batch_alter_table("api_key") as batch:
        batch.add_column(sa.Column("daily_usd", sa.Double(), nullable=True))


def downgrade() -> None:
    _lock_timeout()
    with op.batch_alter_table("api_key") as batch:
        batch.drop_column("daily_usd")
