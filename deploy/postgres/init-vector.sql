-- pgvector is not a trusted extension: create it as the superuser when the database is first made.
CREATE EXTENSION IF NOT EXISTS vector;
