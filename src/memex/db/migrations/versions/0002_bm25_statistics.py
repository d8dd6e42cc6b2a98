"""BM25 statistics: document frequency per lexeme and corpus size, kept current by triggers on chunks.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lexeme_stats",
        sa.Column("lexeme", sa.Text(), nullable=False),
        sa.Column("df", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("lexeme"),
    )
    op.create_table(
        "chunk_stats",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("chunks", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("lexemes", sa.BigInteger(), server_default="0", nullable=False),
        sa.CheckConstraint("id = 1", name="chunk_stats_single_row"),
        sa.PrimaryKeyConstraint("id"),
    )
    # Statement-level triggers see every row of a COPY or cascaded delete at once, so each statement
    # touches each lexeme's counter once, in lexeme order (a fixed lock order between writers).
    op.execute(
        """
        CREATE FUNCTION memex_chunk_stats_insert() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          INSERT INTO lexeme_stats (lexeme, df)
            SELECT u.lexeme, count(*) FROM new_chunks n, unnest(n.tsv) AS u
            GROUP BY u.lexeme ORDER BY u.lexeme
          ON CONFLICT (lexeme) DO UPDATE SET df = lexeme_stats.df + EXCLUDED.df;
          UPDATE chunk_stats SET chunks = chunks + s.n, lexemes = lexemes + s.l
            FROM (SELECT count(*) AS n, coalesce(sum(length(tsv)), 0) AS l FROM new_chunks) s WHERE id = 1;
          RETURN NULL;
        END $$;

        CREATE FUNCTION memex_chunk_stats_delete() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          UPDATE lexeme_stats s SET df = s.df - d.n
            FROM (SELECT u.lexeme, count(*) AS n FROM old_chunks o, unnest(o.tsv) AS u
                  GROUP BY u.lexeme ORDER BY u.lexeme) d
            WHERE s.lexeme = d.lexeme;
          UPDATE chunk_stats SET chunks = chunks - s.n, lexemes = lexemes - s.l
            FROM (SELECT count(*) AS n, coalesce(sum(length(tsv)), 0) AS l FROM old_chunks) s WHERE id = 1;
          RETURN NULL;
        END $$;

        CREATE TRIGGER chunks_stats_insert AFTER INSERT ON chunks
          REFERENCING NEW TABLE AS new_chunks FOR EACH STATEMENT EXECUTE FUNCTION memex_chunk_stats_insert();
        CREATE TRIGGER chunks_stats_delete AFTER DELETE ON chunks
          REFERENCING OLD TABLE AS old_chunks FOR EACH STATEMENT EXECUTE FUNCTION memex_chunk_stats_delete();

        INSERT INTO chunk_stats (id, chunks, lexemes)
          SELECT 1, count(*), coalesce(sum(length(tsv)), 0) FROM chunks;
        INSERT INTO lexeme_stats (lexeme, df)
          SELECT u.lexeme, count(*) FROM chunks c, unnest(c.tsv) AS u GROUP BY u.lexeme;
        """
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS chunks_stats_insert ON chunks")
    op.execute("DROP TRIGGER IF EXISTS chunks_stats_delete ON chunks")
    op.execute("DROP FUNCTION IF EXISTS memex_chunk_stats_insert()")
    op.execute("DROP FUNCTION IF EXISTS memex_chunk_stats_delete()")
    op.drop_table("chunk_stats")
    op.drop_table("lexeme_stats")
