"""BM25 statistics per knowledge base, so one tenant's documents never shift another's scores.

Document frequency per (lexeme, KB) and chunk count and length per KB replace the corpus-wide counters of 0002;
a search sums them over the KBs it covers. Backfilled from the chunks.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_DROP_0002 = """
DROP TRIGGER chunks_stats_insert ON chunks;
DROP TRIGGER chunks_stats_delete ON chunks;
DROP FUNCTION memex_chunk_stats_insert();
DROP FUNCTION memex_chunk_stats_delete();
"""

# Statement-level triggers see every row of a COPY or cascaded delete at once. Each statement takes its KBs'
# kb_chunk_stats rows first, then their lexeme counters; a KB's lexeme counters are touched by no one who does not
# hold its row, so writers of different KBs never wait for each other. A counter that reaches zero is deleted.
_TRIGGERS = """
CREATE FUNCTION memex_kb_stats_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO kb_chunk_stats AS s (kb_id, chunks, lexemes)
    SELECT kb_id, count(*), coalesce(sum(length(tsv)), 0) FROM new_chunks GROUP BY kb_id ORDER BY kb_id
  ON CONFLICT (kb_id) DO UPDATE SET chunks = s.chunks + EXCLUDED.chunks, lexemes = s.lexemes + EXCLUDED.lexemes;
  INSERT INTO kb_lexeme_stats AS s (lexeme, kb_id, df)
    SELECT u.lexeme, n.kb_id, count(*) FROM new_chunks n, unnest(n.tsv) AS u
    GROUP BY n.kb_id, u.lexeme ORDER BY n.kb_id, u.lexeme
  ON CONFLICT (lexeme, kb_id) DO UPDATE SET df = s.df + EXCLUDED.df;
  RETURN NULL;
END $$;

CREATE FUNCTION memex_kb_stats_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM 1 FROM kb_chunk_stats WHERE kb_id IN (SELECT kb_id FROM old_chunks) ORDER BY kb_id FOR UPDATE;
  UPDATE kb_chunk_stats s SET chunks = s.chunks - d.n, lexemes = s.lexemes - d.l
    FROM (SELECT kb_id, count(*) AS n, coalesce(sum(length(tsv)), 0) AS l FROM old_chunks GROUP BY kb_id) d
    WHERE s.kb_id = d.kb_id;
  WITH d AS (
    SELECT u.lexeme, o.kb_id, count(*) AS n FROM old_chunks o, unnest(o.tsv) AS u GROUP BY o.kb_id, u.lexeme
  ), kept AS (
    UPDATE kb_lexeme_stats s SET df = s.df - d.n FROM d
    WHERE s.lexeme = d.lexeme AND s.kb_id = d.kb_id AND s.df > d.n
  )
  DELETE FROM kb_lexeme_stats s USING d WHERE s.lexeme = d.lexeme AND s.kb_id = d.kb_id AND s.df <= d.n;
  RETURN NULL;
END $$;

CREATE TRIGGER chunks_kb_stats_insert AFTER INSERT ON chunks
  REFERENCING NEW TABLE AS new_chunks FOR EACH STATEMENT EXECUTE FUNCTION memex_kb_stats_insert();
CREATE TRIGGER chunks_kb_stats_delete AFTER DELETE ON chunks
  REFERENCING OLD TABLE AS old_chunks FOR EACH STATEMENT EXECUTE FUNCTION memex_kb_stats_delete();
"""


def _kb_id() -> sa.Column[object]:
    return sa.Column(
        "kb_id", UUID(as_uuid=True), sa.ForeignKey("knowledge_bases.id", ondelete="CASCADE"), nullable=False
    )


def upgrade() -> None:
    # Dropping the old triggers locks chunks against writes until this transaction commits, so the backfill
    # below and the new triggers see the same chunks.
    op.execute(_DROP_0002)
    op.drop_table("lexeme_stats")
    op.drop_table("chunk_stats")
    op.create_table(
        "kb_chunk_stats",
        _kb_id(),
        sa.Column("chunks", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("lexemes", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("kb_id"),
    )
    op.create_table(
        "kb_lexeme_stats",
        sa.Column("lexeme", sa.Text(), nullable=False),
        _kb_id(),
        sa.Column("df", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("lexeme", "kb_id"),
    )
    op.create_index("kb_lexeme_stats_kb_idx", "kb_lexeme_stats", ["kb_id"])
    op.execute(_TRIGGERS)
    op.execute(
        """
        INSERT INTO kb_chunk_stats (kb_id, chunks, lexemes)
          SELECT kb.id, count(c.id), coalesce(sum(length(c.tsv)), 0)
          FROM knowledge_bases kb LEFT JOIN chunks c ON c.kb_id = kb.id GROUP BY kb.id;
        INSERT INTO kb_lexeme_stats (lexeme, kb_id, df)
          SELECT u.lexeme, c.kb_id, count(*) FROM chunks c, unnest(c.tsv) AS u GROUP BY c.kb_id, u.lexeme;
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TRIGGER chunks_kb_stats_insert ON chunks;
        DROP TRIGGER chunks_kb_stats_delete ON chunks;
        DROP FUNCTION memex_kb_stats_insert();
        DROP FUNCTION memex_kb_stats_delete();
        """
    )
    op.drop_table("kb_lexeme_stats")
    op.drop_table("kb_chunk_stats")
    # Back to the corpus-wide counters of revision 0002, with its triggers.
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
