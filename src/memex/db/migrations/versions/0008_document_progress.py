"""Documents: indexing progress (chunks embedded of the total) and whether a failure is worth retrying.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("documents", sa.Column("progress_done", sa.Integer, nullable=True))
    op.add_column("documents", sa.Column("progress_total", sa.Integer, nullable=True))
    # Failures recorded before this revision are unknown: they stay retryable, as they were.
    op.add_column("documents", sa.Column("retryable", sa.Boolean, nullable=False, server_default=sa.true()))


def downgrade() -> None:
    op.drop_column("documents", "retryable")
    op.drop_column("documents", "progress_total")
    op.drop_column("documents", "progress_done")
