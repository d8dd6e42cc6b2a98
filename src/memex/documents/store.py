"""All SQL about documents, blobs and chunks. Writes of one document happen in one transaction."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from memex.documents.models import Document, Passage, StoredFile
from memex.embeddings import store as embedding_store
from memex.embeddings.base import Vectors, vector_literal
from memex.ingest.chunking import Chunk

DOCUMENT_COLUMNS = (
    "d.id, d.kb_id, d.source_path, d.title, d.mime, d.file_type, d.sha256, d.size, d.status, d.error, "
    "d.chunk_count, d.modified_at, d.created_at, d.updated_at, d.indexed_at, d.progress_done, d.progress_total, "
    "d.retryable"
)


async def files_under(conn: AsyncConnection, *, kb_id: uuid.UUID, prefix: str) -> list[StoredFile]:
    """Documents of a KB whose source path is `prefix` or lies beneath it."""
    rows = await conn.execute(
        sa.text(
            "SELECT id, source_path, sha256, status FROM documents "
            "WHERE kb_id = :kb_id AND (source_path = :prefix OR starts_with(source_path, :under))"
        ),
        {"kb_id": kb_id, "prefix": prefix, "under": prefix.rstrip("/") + "/"},
    )
    return [StoredFile(id=r.id, source_path=r.source_path, sha256=r.sha256, status=r.status) for r in rows]


async def put_document(
    conn: AsyncConnection,
    *,
    kb_id: uuid.UUID,
    source_path: str,
    data: bytes,
    sha256: str,
    title: str,
    mime: str,
    file_type: str,
    status: str,
    modified_at: datetime | None,
    metadata: str = "{}",
) -> uuid.UUID:
    """Store a file's bytes and its document row (new, or replacing the one at that path); returns its id.

    The bytes a replaced version had are deleted with it unless another document shares them: this is the one
    way a document gets its bytes, so no blob outlives its last document.
    """
    await conn.execute(
        sa.text(
            "INSERT INTO blobs (sha256, data, size) VALUES (:sha256, :data, :size) ON CONFLICT (sha256) DO NOTHING"
        ),
        {"sha256": sha256, "data": data, "size": len(data)},
    )
    row = (
        await conn.execute(
            sa.text(
                "WITH previous AS (SELECT sha256 FROM documents WHERE kb_id = :kb_id AND source_path = :source_path) "
                "INSERT INTO documents (kb_id, source_path, title, mime, file_type, sha256, size, status, metadata, modified_at) "
                "VALUES (:kb_id, :source_path, :title, :mime, :file_type, :sha256, :size, :status, CAST(:metadata AS jsonb), :modified_at) "
                "ON CONFLICT ON CONSTRAINT documents_kb_path_key DO UPDATE SET "
                "title = EXCLUDED.title, mime = EXCLUDED.mime, file_type = EXCLUDED.file_type, sha256 = EXCLUDED.sha256, "
                "size = EXCLUDED.size, status = EXCLUDED.status, metadata = EXCLUDED.metadata, "
                "modified_at = EXCLUDED.modified_at, error = NULL, retryable = true, progress_done = NULL, "
                "progress_total = NULL, updated_at = now() "
                "RETURNING id, (SELECT sha256 FROM previous) AS previous_sha256"
            ),
            {
                "kb_id": kb_id,
                "source_path": source_path,
                "title": title,
                "mime": mime,
                "file_type": file_type,
                "sha256": sha256,
                "size": len(data),
                "status": status,
                "metadata": metadata,
                "modified_at": modified_at,
            },
        )
    ).one()
    if row.previous_sha256 is not None and row.previous_sha256 != sha256:
        await delete_orphan_blobs(conn, shas=[row.previous_sha256])
    document_id: uuid.UUID = row.id
    return document_id


async def replace_chunks(
    conn: AsyncConnection,
    *,
    document_id: uuid.UUID,
    kb_id: uuid.UUID,
    chunks: Sequence[Chunk],
    vectors: Vectors,
    generation: int | None = None,
) -> None:
    """Swap a document's chunks for new ones (in the caller's transaction) and mark it indexed.

    `generation` is the model generation the vectors were made in (`Runtime.embedding_model`): when `memex
    reembed` swapped models since, this raises EmbeddingModelChanged and writes nothing. Every service passes it;
    only tests and benchmarks that own the database leave it out.
    """
    if generation is not None:
        await embedding_store.check_generation(conn, generation)
    # A new document's chunks are copied in before its KB's statistics row is taken: the insert trigger takes it at
    # the end of the COPY, so the slow part (tsvectors, HNSW and GIN inserts) runs outside it and writers of one
    # KB queue only for the short rest. Replacing chunks deletes too, and that trigger takes the row more strongly
    # than the insert did (an upgrade another waiter could deadlock): then the row is taken first, as always.
    had_chunks = (
        await conn.execute(sa.text("SELECT EXISTS (SELECT 1 FROM chunks WHERE document_id = :id)"), {"id": document_id})
    ).scalar_one()
    if had_chunks:
        await lock_chunk_stats(conn, kb_ids=[kb_id])
        await conn.execute(sa.text("DELETE FROM chunks WHERE document_id = :id"), {"id": document_id})
    await copy_chunks(
        conn, rows=((document_id, kb_id, chunk, vector) for chunk, vector in zip(chunks, vectors, strict=True))
    )
    await conn.execute(
        sa.text(
            "UPDATE documents SET status = 'indexed', error = NULL, retryable = true, chunk_count = :n, indexed_at = now(), "
            "updated_at = now(), progress_done = NULL, progress_total = NULL "
            "WHERE id = :id"
        ),
        {"id": document_id, "n": len(chunks)},
    )


async def copy_chunks(conn: AsyncConnection, *, rows: object) -> None:
    """Bulk-load chunk rows with COPY: (document_id, kb_id, Chunk, vector) tuples."""
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    assert driver is not None
    async with (
        driver.cursor() as cur,
        cur.copy(
            "COPY chunks (document_id, kb_id, ordinal, heading, context, location, text, token_count, embedding) FROM STDIN"
        ) as copy,
    ):
        for document_id, kb_id, chunk, vector in rows:  # type: ignore[attr-defined]
            await copy.write_row(
                (
                    document_id,
                    kb_id,
                    chunk.ordinal,
                    chunk.heading,
                    chunk.context,
                    chunk.location,
                    chunk.text.replace("\x00", ""),
                    chunk.token_count,
                    vector_literal(vector),
                )
            )


async def rename(
    conn: AsyncConnection, *, document_id: uuid.UUID, source_path: str, modified_at: datetime | None
) -> None:
    await conn.execute(
        sa.text("UPDATE documents SET source_path = :path, modified_at = :mtime, updated_at = now() WHERE id = :id"),
        {"id": document_id, "path": source_path, "mtime": modified_at},
    )


async def lock_chunk_stats(conn: AsyncConnection, *, kb_ids: Sequence[uuid.UUID]) -> None:
    """Take these KBs' BM25 statistics rows, in KB order, before any of their chunks is written or deleted.

    The chunk triggers lock a KB's row and then its lexeme counters, once per statement; a transaction whose
    statements touch several KBs (or one KB twice) could otherwise deadlock with another taking them in another
    order. The one exception is a single COPY of new chunks into one KB and nothing else (`replace_chunks` for a
    new document): its trigger takes the row itself, after the slow part. Writers of different KBs never wait
    for each other.
    """
    ids = sorted(set(kb_ids))
    if not ids:
        return
    # A KB's row is made by its first write; until then there is nothing to lock.
    await conn.execute(
        sa.text(
            "INSERT INTO kb_chunk_stats (kb_id) SELECT k FROM unnest(CAST(:ids AS uuid[])) k ORDER BY k "
            "ON CONFLICT (kb_id) DO NOTHING"
        ),
        {"ids": ids},
    )
    await conn.execute(
        sa.text("SELECT 1 FROM kb_chunk_stats WHERE kb_id = ANY(:ids) ORDER BY kb_id FOR UPDATE"), {"ids": ids}
    )


async def delete(conn: AsyncConnection, *, document_ids: Sequence[uuid.UUID]) -> None:
    """Delete documents (chunks go with them) and any blob no document uses any more."""
    if not document_ids:
        return
    kbs = await conn.execute(
        sa.text("SELECT DISTINCT kb_id FROM documents WHERE id = ANY(:ids)"), {"ids": list(document_ids)}
    )
    await lock_chunk_stats(conn, kb_ids=[r.kb_id for r in kbs])
    shas = await conn.execute(
        sa.text("DELETE FROM documents WHERE id = ANY(:ids) RETURNING sha256"), {"ids": list(document_ids)}
    )
    await delete_orphan_blobs(conn, shas=[r.sha256 for r in shas])


async def delete_orphan_blobs(conn: AsyncConnection, *, shas: Sequence[str]) -> None:
    await conn.execute(
        sa.text(
            "DELETE FROM blobs b WHERE b.sha256 = ANY(:shas) "
            "AND NOT EXISTS (SELECT 1 FROM documents d WHERE d.sha256 = b.sha256)"
        ),
        {"shas": list(set(shas))},
    )


async def get(
    conn: AsyncConnection, *, document_id: uuid.UUID, kb_condition: str, params: dict[str, object]
) -> Document | None:
    """A document, if its KB satisfies `kb_condition` (from kbs.access.kb_filter on column d.kb_id)."""
    row = (
        await conn.execute(
            sa.text(f"SELECT {DOCUMENT_COLUMNS} FROM documents d WHERE d.id = :document_id AND {kb_condition}"),
            params | {"document_id": document_id},
        )
    ).first()
    return Document.from_row(row) if row else None


async def list_in_kb(conn: AsyncConnection, *, kb_id: uuid.UUID, limit: int = 1000, offset: int = 0) -> list[Document]:
    rows = await conn.execute(
        sa.text(
            f"SELECT {DOCUMENT_COLUMNS} FROM documents d WHERE d.kb_id = :kb_id "
            "ORDER BY d.source_path LIMIT :limit OFFSET :offset"
        ),
        {"kb_id": kb_id, "limit": limit, "offset": offset},
    )
    return [Document.from_row(r) for r in rows]


async def blob(conn: AsyncConnection, *, sha256: str) -> bytes | None:
    row = (await conn.execute(sa.text("SELECT data FROM blobs WHERE sha256 = :sha"), {"sha": sha256})).first()
    return bytes(row.data) if row else None


async def mark_status(
    conn: AsyncConnection, *, document_id: uuid.UUID, status: str, error: str | None = None, retryable: bool = True
) -> None:
    """Set a document's status and error; any indexing progress it showed ends with it."""
    await conn.execute(
        sa.text(
            "UPDATE documents SET status = :status, error = :error, retryable = :retryable, progress_done = NULL, "
            "progress_total = NULL, updated_at = now() WHERE id = :id"
        ),
        {"id": document_id, "status": status, "error": error, "retryable": retryable},
    )


async def set_progress(conn: AsyncConnection, *, progress: Sequence[tuple[uuid.UUID, int, int]]) -> None:
    """Record how far indexing got: (document id, chunks embedded, chunks in all), for documents still indexing.

    `updated_at` is left alone: it says when the document last changed, not when a job last worked on it.
    """
    if not progress:
        return
    await conn.execute(
        sa.text(
            "UPDATE documents d SET progress_done = p.done, progress_total = p.total "
            "FROM unnest(CAST(:ids AS uuid[]), CAST(:done AS int[]), CAST(:total AS int[])) AS p(id, done, total) "
            "WHERE d.id = p.id AND d.status = 'indexing'"
        ),
        {"ids": [p[0] for p in progress], "done": [p[1] for p in progress], "total": [p[2] for p in progress]},
    )


async def find_copy(conn: AsyncConnection, *, kb_id: uuid.UUID, sha256: str, other_than: str) -> Document | None:
    """A document of the KB holding exactly these bytes under another name (the first by name, if several do)."""
    row = (
        await conn.execute(
            sa.text(
                f"SELECT {DOCUMENT_COLUMNS} FROM documents d WHERE d.kb_id = :kb_id AND d.sha256 = :sha "
                "AND d.source_path <> :name ORDER BY d.source_path LIMIT 1"
            ),
            {"kb_id": kb_id, "sha": sha256, "name": other_than},
        )
    ).first()
    return Document.from_row(row) if row else None


async def find_by_path(conn: AsyncConnection, *, kb_id: uuid.UUID, source_path: str) -> Document | None:
    row = (
        await conn.execute(
            sa.text(f"SELECT {DOCUMENT_COLUMNS} FROM documents d WHERE d.kb_id = :kb_id AND d.source_path = :path"),
            {"kb_id": kb_id, "path": source_path},
        )
    ).first()
    return Document.from_row(row) if row else None


async def get_for_update(conn: AsyncConnection, *, document_id: uuid.UUID) -> Document | None:
    """A document, its row locked until the transaction ends (so a re-upload cannot slip in between)."""
    row = (
        await conn.execute(
            sa.text(f"SELECT {DOCUMENT_COLUMNS} FROM documents d WHERE d.id = :id FOR UPDATE"), {"id": document_id}
        )
    ).first()
    return Document.from_row(row) if row else None


async def set_parsed(
    conn: AsyncConnection, *, document_id: uuid.UUID, title: str, mime: str, file_type: str, metadata: str
) -> None:
    """Record what parsing learnt about a document (its title and front matter)."""
    await conn.execute(
        sa.text(
            "UPDATE documents SET title = :title, mime = :mime, file_type = :file_type, "
            "metadata = CAST(:metadata AS jsonb), updated_at = now() WHERE id = :id"
        ),
        {"id": document_id, "title": title, "mime": mime, "file_type": file_type, "metadata": metadata},
    )


async def without_live_job(conn: AsyncConnection, *, task_name: str, idle_seconds: float) -> list[uuid.UUID]:
    """Documents waiting to be indexed that no queued or running job will ever pick up (their job was lost)."""
    rows = await conn.execute(
        sa.text(
            "SELECT d.id FROM documents d WHERE d.status IN ('queued', 'indexing') "
            "AND d.updated_at < now() - make_interval(secs => :idle) "
            "AND NOT EXISTS (SELECT 1 FROM procrastinate_jobs j WHERE j.task_name = :task "
            "AND j.status IN ('todo', 'doing') AND j.args ->> 'document_id' = d.id::text) "
            "ORDER BY d.updated_at"
        ),
        {"task": task_name, "idle": idle_seconds},
    )
    return [r.id for r in rows]


async def chunks_of(conn: AsyncConnection, *, document_id: uuid.UUID) -> list[tuple[str, str]]:
    """A document's chunks in reading order, as (heading, text) pairs."""
    rows = await conn.execute(
        sa.text("SELECT heading, text FROM chunks WHERE document_id = :id ORDER BY ordinal"), {"id": document_id}
    )
    return [(r.heading, r.text) for r in rows]


async def passages_of(conn: AsyncConnection, *, document_id: uuid.UUID) -> list[Passage]:
    """A document's chunks in reading order, with their ids and locations."""
    rows = await conn.execute(
        sa.text("SELECT id, ordinal, heading, location, text FROM chunks WHERE document_id = :id ORDER BY ordinal"),
        {"id": document_id},
    )
    return [Passage(id=r.id, ordinal=r.ordinal, heading=r.heading, location=r.location, text=r.text) for r in rows]
