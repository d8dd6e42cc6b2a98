"""Alembic environment: runs on the connection that `memex.db.migrate` hands it (under an advisory lock)."""

from __future__ import annotations

from alembic import context

from memex.db.tables import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, include_schemas=False)
with context.begin_transaction():
    context.run_migrations()
