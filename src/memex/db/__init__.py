"""Database access: engine, embedded Postgres, tables and migrations."""
