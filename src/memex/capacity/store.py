"""The sizes of what a store holds, read from PostgreSQL's catalog."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

# Named SQL: the relations an estimate models, their sizes in bytes, and the counts they grow with.
STORE_SIZES = sa.text(
    """
    SELECT (SELECT count(*) FROM chunks) AS chunks,
           (SELECT count(*) FROM documents) AS documents,
           (SELECT coalesce(sum(size), 0) FROM blobs) AS file_bytes,
           pg_table_size('chunks') AS chunk_table,
           pg_relation_size('chunks_embedding_hnsw') AS hnsw,
           pg_relation_size('chunks_tsv_gin') AS gin,
           pg_indexes_size('chunks') - pg_relation_size('chunks_embedding_hnsw')
               - pg_relation_size('chunks_tsv_gin') AS chunk_btree,
           pg_total_relation_size('kb_lexeme_stats') + pg_total_relation_size('kb_chunk_stats') AS bm25_stats,
           pg_total_relation_size('documents') AS documents_total,
           pg_total_relation_size('blobs') AS blobs_total
    """
)


@dataclass(frozen=True)
class StoreSizes:
    chunks: int
    documents: int
    file_bytes: int
    chunk_table: int
    hnsw: int
    gin: int
    chunk_btree: int
    bm25_stats: int
    documents_total: int
    blobs_total: int

    @property
    def database(self) -> int:
        """What the estimate models of the database: chunks, their indexes, documents and blobs."""
        return (
            self.chunk_table
            + self.hnsw
            + self.gin
            + self.chunk_btree
            + self.bm25_stats
            + self.documents_total
            + self.blobs_total
        )


async def sizes(conn: AsyncConnection) -> StoreSizes:
    """The current sizes (run VACUUM first for settled figures: pending GIN entries, dead rows)."""
    row = (await conn.execute(STORE_SIZES)).one()
    return StoreSizes(**{k: int(v) for k, v in row._mapping.items()})


# GIN's pending list (fastupdate) off or on. Off while constants are measured: its pages are allocated and recycled
# in steps of up to 4 MB, which would swamp what a few thousand chunks add to the index itself; the estimate adds
# the pending list as a term of its own.
GIN_PENDING_LIST = {
    True: sa.text("ALTER INDEX chunks_tsv_gin SET (fastupdate = on)"),
    False: sa.text("ALTER INDEX chunks_tsv_gin SET (fastupdate = off)"),
}


async def use_gin_pending_list(conn: AsyncConnection, enabled: bool) -> None:
    """Turn GIN's pending list off to measure the full-text index's own growth, and on again (the default)."""
    await conn.execute(GIN_PENDING_LIST[enabled])


def per_chunk(smaller: StoreSizes, larger: StoreSizes) -> dict[str, float]:
    """The storage constants, from the same store measured at two sizes: what each further chunk adds (so that
    fixed costs, such as the pages of GIN's pending list, are not spread over the chunks)."""
    added = larger.chunks - smaller.chunks
    if added <= 0 or not larger.documents or not larger.file_bytes:
        raise ValueError("measure a store that holds documents, then again after adding chunks to it")
    return {
        "chunk_table_bytes": (larger.chunk_table - smaller.chunk_table) / added,
        "hnsw_bytes": (larger.hnsw - smaller.hnsw) / added,
        "gin_bytes": (larger.gin - smaller.gin) / added,
        "chunk_btree_bytes": (larger.chunk_btree - smaller.chunk_btree) / added,
        "bm25_stats_bytes": (larger.bm25_stats - smaller.bm25_stats) / added,
        "document_bytes": larger.documents_total / larger.documents,
        "blob_bytes_per_file_byte": larger.blobs_total / larger.file_bytes,
    }
