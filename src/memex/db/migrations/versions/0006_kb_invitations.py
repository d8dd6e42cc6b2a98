"""Sharing is an invitation: a membership counts once its user accepts it (`accepted_at`).

Existing memberships were made before invitations existed and count as accepted.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("kb_members", sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE kb_members SET accepted_at = created_at")


def downgrade() -> None:
    op.drop_column("kb_members", "accepted_at")
