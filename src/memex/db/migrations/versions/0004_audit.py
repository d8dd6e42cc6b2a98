"""Audit log: an append-only table; the database refuses UPDATE, DELETE and TRUNCATE on it.

The one exception is retention: a DELETE of rows older than the cutoff named by the transaction-local setting
`memex.audit_delete_before`, which only the retention job sets (audit/store.py).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("actor_user_id", sa.UUID(), nullable=True),
        sa.Column("actor_email", sa.Text(), nullable=True),
        sa.Column("actor_key_id", sa.UUID(), nullable=True),
        sa.Column("ip", sa.Text(), nullable=True),
        sa.Column("request_id", sa.Text(), nullable=True),
        sa.Column("target_type", sa.Text(), nullable=True),
        sa.Column("target_id", sa.Text(), nullable=True),
        sa.Column("detail", postgresql.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.CheckConstraint("outcome IN ('success', 'failure')", name="audit_log_outcome_check"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("audit_log_at_idx", "audit_log", ["at"])
    op.create_index("audit_log_actor_idx", "audit_log", ["actor_user_id", "at"])
    op.execute(
        """
        CREATE FUNCTION memex_audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF TG_OP = 'DELETE'
             AND OLD.at < NULLIF(current_setting('memex.audit_delete_before', true), '')::timestamptz THEN
            RETURN OLD;
          END IF;
          RAISE EXCEPTION 'audit_log is append-only: % is not allowed', TG_OP
            USING ERRCODE = 'insufficient_privilege';
        END $$;

        CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
          FOR EACH ROW EXECUTE FUNCTION memex_audit_log_append_only();
        CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
          FOR EACH STATEMENT EXECUTE FUNCTION memex_audit_log_append_only();
        """
    )


def downgrade() -> None:
    op.drop_table("audit_log")  # its triggers go with it
    op.execute("DROP FUNCTION IF EXISTS memex_audit_log_append_only()")
