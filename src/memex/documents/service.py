"""Documents through the API: upload (stored and queued in one transaction), read, download, delete, retry, and
the ingestion job's body (parse → chunk → embed → swap chunks), which leaves every document indexed or failed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import PurePath

import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from memex import jobs
from memex.audit import service as audit
from memex.audit.models import Action
from memex.documents import store
from memex.documents.models import Document, DocumentText, TextFormat
from memex.errors import Conflict, InvalidInput, MemexError, NotFound, UnsupportedFileType, UploadRejected
from memex.ingest import detect, pipeline
from memex.ingest.parsers import SUPPORTED_EXTENSIONS, extension_of, mime_for
from memex.ingest.pipeline import MAX_REASON_CHARS, PENDING
from memex.ingest.prepare import file_type
from memex.jobs import batching, fairness
from memex.kbs.access import Actor, Role, kb_filter, scope_for
from memex.kbs.service import get_kb, require_kb
from memex.runtime import Runtime

log = structlog.get_logger("memex.ingest")
_INTERRUPTED = "the batch this document was indexed with failed; it will be tried again on its own"

MAX_NAME_CHARS = 1024
# Formats the document page renders from the original text; every other format is shown as its passages' text.
_RENDERED: dict[str, TextFormat] = {"md": "markdown", "markdown": "markdown", "html": "html", "htm": "html"}
# Past this the page shows the passages instead: rendering megabytes of markup in a browser tab helps nobody.
MAX_RENDERED_BYTES = 2 * 1024 * 1024
# A rejected file's name is echoed back; one too long to store is cut to this.
MAX_SHOWN_NAME = 200


@dataclass(frozen=True, slots=True)
class Upload:
    """One uploaded file: its name (possibly a relative path, "notes/a.md") and its bytes."""

    name: str
    data: bytes


async def _document(conn: AsyncConnection, actor: Actor, document_id: uuid.UUID, role: Role) -> Document:
    actor.require_scope(scope_for(role))
    condition, params = kb_filter(actor, Role.viewer, column="d.kb_id")
    doc = await store.get(conn, document_id=document_id, kb_condition=condition, params=params)
    if doc is None:
        # Same answer for "does not exist" and "not yours", so ids cannot be probed.
        raise NotFound("document not found")
    if role > Role.viewer:
        await require_kb(conn, actor, doc.kb_id, role)
    return doc


@dataclass(frozen=True, slots=True)
class Rejected:
    """A file an upload did not take, and why (the error's message is written without the file's name)."""

    name: str
    error: MemexError
    position: int  # where the file was in the upload: reasons are listed in the order the files were sent


@dataclass(frozen=True, slots=True)
class UploadResult:
    """What an upload did with each file: the documents it accepted and the files it rejected."""

    documents: list[Document]
    rejected: list[Rejected]


async def upload(
    runtime: Runtime,
    actor: Actor,
    *,
    kb_id: uuid.UUID,
    receive: Callable[[], Awaitable[Sequence[Upload]]],
    keep_duplicates: bool = False,
) -> UploadResult:
    """Store uploaded files and queue their ingestion; a file with a name already in the KB replaces that document.

    Each file is accepted or rejected on its own (wrong type, empty, a copy of a document the KB holds under
    another name unless `keep_duplicates`), and a rejected file changes nothing; when none is accepted this raises
    UploadRejected with every reason. Access is checked before `receive` reads the body, and no connection is held
    while it streams.
    """
    async with runtime.engine.connect() as conn:
        await require_kb(conn, actor, kb_id, Role.editor)
    received = await receive()
    if not received:
        raise InvalidInput("no files: send one or more in the multipart field 'files'")
    rejected: list[Rejected] = []
    # The last of several files with one name wins, as it would on disk.
    files: dict[str, bytes] = {}
    positions: dict[str, int] = {}
    accepted = accepted_extensions(runtime.settings.allowed_file_types)
    for position, f in enumerate(received):
        try:
            name = clean_name(f.name)
            check_file(name, f.data, accepted)
        except MemexError as exc:
            rejected.append(Rejected(name=f.name[:MAX_SHOWN_NAME], error=exc, position=position))
            continue
        files[name] = f.data
        positions[name] = position

    documents: list[Document] = []
    queued: list[uuid.UUID] = []
    async with runtime.engine.begin() as conn:
        await require_kb(conn, actor, kb_id, Role.editor)
        for name, data in files.items():
            sha = hashlib.sha256(data).hexdigest()
            existing = await store.find_by_path(conn, kb_id=kb_id, source_path=name)
            if existing is not None and existing.sha256 == sha and existing.status != "failed" and actor.can_read:
                # Same content, already indexed or on its way. A write-only key is not told so (it would learn what
                # the KB holds): its file is queued again like any other, and copies are not looked for either.
                documents.append(existing)
                continue
            if actor.can_read and not keep_duplicates:
                twin = await store.find_copy(conn, kb_id=kb_id, sha256=sha, other_than=name)
                if twin is not None:
                    rejected.append(Rejected(name=name, error=Conflict(_duplicate(twin)), position=positions[name]))
                    continue
            document_id = await store.put_document(
                conn,
                kb_id=kb_id,
                source_path=name,
                data=data,
                sha256=sha,
                title=existing.title if existing else PurePath(name).stem,
                mime=mime_for(name),
                file_type=file_type(name),
                status="queued",
                modified_at=None,
            )
            queued.append(document_id)
            await audit.record(
                conn,
                action=Action.document_uploaded,
                actor=actor,
                target_type="document",
                target_id=document_id,
                detail={"kb_id": str(kb_id), "name": name, "size": len(data), "replaced": existing is not None},
            )
            found = await store.find_by_path(conn, kb_id=kb_id, source_path=name)
            assert found is not None
            documents.append(found)
        rejected.sort(key=lambda r: r.position)
        if not documents:
            # Nothing was written, so leaving here (rolling back) changes nothing.
            raise _all_rejected(rejected)
        await jobs.defer_ingest(conn, document_ids=queued, owner=fairness.owner_of(actor))
    log.info(
        "documents uploaded",
        kb=str(kb_id),
        files=len(received),
        queued=len(queued),
        rejected=len(rejected),
        bytes=sum(len(d) for d in files.values()),
    )
    return UploadResult(documents=documents, rejected=rejected)


def _duplicate(twin: Document) -> str:
    return f"the same content is already in this knowledge base as {twin.source_path!r}"


def _all_rejected(rejected: Sequence[Rejected]) -> UploadRejected:
    """One error for an upload none of whose files was accepted: the status their reasons share, or 422."""
    statuses = {r.error.status_code for r in rejected}
    status = statuses.pop() if len(statuses) == 1 else 422
    reasons = "; ".join(f"{r.name}: {r.error.message}" for r in rejected)
    message = reasons if len(rejected) == 1 else f"none of the {len(rejected)} files was accepted: {reasons}"
    return UploadRejected(
        message[:MAX_REASON_CHARS], status_code=status, rejected=[(r.name, r.error.message) for r in rejected]
    )


def clean_name(raw: str) -> str:
    """A stored name from an uploaded file name: a relative path with forward slashes, nothing climbing out."""
    parts = [p for p in raw.replace("\\", "/").strip().split("/") if p not in ("", ".")]
    if not parts or ".." in parts or len(raw) > MAX_NAME_CHARS or any(ord(ch) < 0x20 for ch in raw):
        raise InvalidInput(f"invalid file name {raw[:100]!r}: use a relative path such as notes/today.md")
    return "/".join(parts)


def accepted_extensions(allowed: Sequence[str]) -> frozenset[str]:
    """Supported extensions, narrowed to MEMEX_ALLOWED_FILE_TYPES when that is set."""
    if not allowed:
        return SUPPORTED_EXTENSIONS
    return SUPPORTED_EXTENSIONS & {"." + t.lower().lstrip(".") for t in allowed}


def check_file(name: str, data: bytes, accepted: frozenset[str]) -> None:
    """Refuse a file whose extension is not accepted or whose content is not what its extension says."""
    ext = extension_of(name)
    if ext not in accepted:
        shown = f"file type {ext}" if ext else "a file without an extension"
        raise UnsupportedFileType(f"{shown} is not accepted; accepted types: {', '.join(sorted(accepted))}")
    if not data.strip():
        raise InvalidInput("the file is empty")
    if not detect.sniff_matches(data, ext):
        why = _SIGNATURES.get(ext, "wrong signature")
        raise UnsupportedFileType(f"the content is not a {ext.lstrip('.').upper()} file ({why})")
    if _is_text(name) and detect.looks_binary(data):
        raise UnsupportedFileType(f"binary content where {ext} text was expected")


_SIGNATURES = {".pdf": "no %PDF- header", ".docx": "not a ZIP archive"}


def _is_text(name: str) -> bool:
    mime = mime_for(name)
    return mime.startswith("text/") or mime == "application/json"


async def list_documents(
    conn: AsyncConnection, actor: Actor, *, kb_id: uuid.UUID, limit: int = 1000, offset: int = 0
) -> list[Document]:
    if not 1 <= limit <= 1000 or offset < 0:
        raise InvalidInput("limit must be between 1 and 1000, and offset not negative")
    await require_kb(conn, actor, kb_id, Role.viewer)
    return await store.list_in_kb(conn, kb_id=kb_id, limit=limit, offset=offset)


async def get(conn: AsyncConnection, actor: Actor, document_id: uuid.UUID) -> Document:
    return await _document(conn, actor, document_id, Role.viewer)


async def original(conn: AsyncConnection, actor: Actor, document_id: uuid.UUID) -> tuple[Document, bytes]:
    """A document and the bytes it was made from."""
    doc = await _document(conn, actor, document_id, Role.viewer)
    data = await store.blob(conn, sha256=doc.sha256)
    if data is None:
        raise NotFound("the original file is gone")
    return doc, data


async def text(conn: AsyncConnection, actor: Actor, document_id: uuid.UUID) -> DocumentText:
    """A document with its KB, its passages in reading order, and its original text where the page renders it."""
    doc = await _document(conn, actor, document_id, Role.viewer)
    kb = await get_kb(conn, actor, doc.kb_id)
    passages = await store.passages_of(conn, document_id=doc.id)
    shown_as: TextFormat = "pdf" if doc.file_type == "pdf" else _RENDERED.get(doc.file_type, "text")
    source = None
    # Only a file that was read as text is rendered: a failed one may be binary bytes under a .md name.
    if shown_as in ("markdown", "html") and doc.status == "indexed" and doc.size <= MAX_RENDERED_BYTES:
        data = await store.blob(conn, sha256=doc.sha256)
        if data is not None:
            source = detect.decode_text(data).replace("\x00", "")
    return DocumentText(document=doc, kb=kb, format=shown_as, source=source, passages=passages)


async def delete(conn: AsyncConnection, actor: Actor, document_id: uuid.UUID) -> None:
    """Delete a document, its chunks, and its original unless another document shares it."""
    doc = await _document(conn, actor, document_id, Role.editor)
    await store.delete(conn, document_ids=[doc.id])
    await audit.record(
        conn,
        action=Action.document_deleted,
        actor=actor,
        target_type="document",
        target_id=doc.id,
        detail={"kb_id": str(doc.kb_id), "name": doc.source_path},
    )


async def rename(conn: AsyncConnection, actor: Actor, document_id: uuid.UUID, *, name: str) -> Document:
    """Give a document another name (a moved file keeps its chunks: nothing is re-indexed)."""
    new_name = clean_name(name)
    doc = await _document(conn, actor, document_id, Role.editor)
    if extension_of(new_name) != extension_of(doc.source_path):
        raise InvalidInput("a rename cannot change the file's extension: upload the file under its new name")
    try:
        await store.rename(conn, document_id=doc.id, source_path=new_name, modified_at=doc.modified_at)
    except IntegrityError as exc:
        raise Conflict(f"another document is already named {new_name!r} in this knowledge base") from exc
    renamed = await store.find_by_path(conn, kb_id=doc.kb_id, source_path=new_name)
    assert renamed is not None
    return renamed


async def retry(conn: AsyncConnection, actor: Actor, document_id: uuid.UUID) -> Document:
    """Queue a failed document for ingestion again, unless the file itself is why it failed (it would again)."""
    doc = await _document(conn, actor, document_id, Role.editor)
    if doc.status != "failed":
        raise Conflict(f"only a failed document can be retried; this one is {doc.status}")
    if not doc.retryable:
        raise Conflict(
            f"{doc.source_path} cannot be indexed as it is ({doc.error}), so trying again would fail the same way: "
            "upload a repaired copy under the same name to replace it"
        )
    await store.mark_status(conn, document_id=doc.id, status="queued")
    await jobs.defer_ingest(conn, document_ids=[doc.id], owner=fairness.owner_of(actor))
    return dataclasses.replace(doc, status="queued", error=None)


async def ingest(
    runtime: Runtime, document_id: uuid.UUID, *, job_id: int | None = None, retry_wait_seconds: float = 0
) -> None:
    """Index a queued document, and (given its job's id) the next waiting ones with it, embedded in full batches.

    A file that cannot be parsed fails alone, with its reason; other errors propagate (to be retried), and the
    documents claimed with this one go back to the queue, each to be tried again on its own after
    `retry_wait_seconds` (the job's retry strategy's first wait).
    """
    started = time.perf_counter()
    async with runtime.engine.begin() as conn:
        doc = await store.get_for_update(conn, document_id=document_id)
        if doc is None or doc.status not in PENDING:
            return  # deleted, or an earlier job for the same document already finished it
        claimed = []
        if job_id is not None:
            claimed = await batching.claim_next(
                conn,
                claimant=job_id,
                queue=jobs.INGEST_QUEUE,
                task=jobs.INGEST_TASK,
                limit=batching.MAX_DOCUMENTS - 1,
            )
        docs: list[tuple[Document, bytes | None]] = []
        for each in [doc.id, *(c.document_id for c in claimed)]:
            found = doc if each == doc.id else await store.get_for_update(conn, document_id=each)
            if found is None or found.status not in PENDING:
                continue
            docs.append((found, await store.blob(conn, sha256=found.sha256)))
            await store.mark_status(conn, document_id=found.id, status="indexing")
    items = []
    for found, data in docs:
        if data is None:
            await finish_failed(
                runtime, found, "the original file is missing from the database: upload it again", retryable=False
            )
            continue
        items.append(
            pipeline.WorkItem(
                source_path=found.source_path,
                name=found.source_path,
                load=lambda data=data, sha=found.sha256: (data, sha),  # type: ignore[misc]
                uploaded=found,
            )
        )
    outcomes = pipeline.Outcomes()
    try:
        await pipeline.run(runtime, kb_id=doc.kb_id, items=items, outcomes=outcomes)
    except BaseException:
        await _give_back(runtime, claimed, wait_seconds=retry_wait_seconds)
        raise
    async with runtime.engine.begin() as conn:
        await batching.finish(conn, job_ids=[c.job_id for c in claimed])
    seconds = time.perf_counter() - started
    for failure in outcomes.failures:
        log.warning("document failed", name=failure.path, kb=str(doc.kb_id), reason=failure.reason[:MAX_REASON_CHARS])
    for written in outcomes.written:
        log.info(
            "document indexed",
            document_id=str(written.document_id),
            chunks=written.chunks,
            batch=len(items),
            duration_ms=round(seconds * 1000, 1),
        )


async def _give_back(runtime: Runtime, claimed: Sequence[batching.Claimed], *, wait_seconds: float) -> None:
    """Return claimed jobs whose documents are not done to the queue, as a failed attempt of each."""
    if not claimed:
        return
    async with runtime.engine.begin() as conn:
        pending = []
        for c in claimed:
            found = await store.get_for_update(conn, document_id=c.document_id)
            if found is not None and found.status in PENDING:
                pending.append(c.job_id)
                await store.mark_status(conn, document_id=found.id, status="queued", error=_INTERRUPTED)
        await batching.retry(conn, job_ids=pending, wait_seconds=wait_seconds)
        await batching.finish(conn, job_ids=[c.job_id for c in claimed if c.job_id not in pending])


async def finish_failed(runtime: Runtime, doc: Document, reason: str, *, retryable: bool = True) -> None:
    """Mark a document failed with the reason (unless newer content replaced it meanwhile)."""
    async with runtime.engine.begin() as conn:
        if await pipeline.still_current(conn, doc):
            await store.mark_status(
                conn, document_id=doc.id, status="failed", error=reason[:MAX_REASON_CHARS], retryable=retryable
            )
    runtime.metrics.document_ingested("failed")
    log.warning("document failed", document_id=str(doc.id), kb=str(doc.kb_id), reason=reason[:MAX_REASON_CHARS])


async def attempt_failed(runtime: Runtime, document_id: uuid.UUID, *, reason: str, final: bool) -> None:
    """Record a failed attempt: back to `queued` while retries remain, `failed` with the reason after the last."""
    async with runtime.engine.begin() as conn:
        doc = await store.get_for_update(conn, document_id=document_id)
        if doc is None or doc.status not in PENDING:
            return
        status, error = ("failed", reason) if final else ("queued", f"{reason} (will retry)")
        await store.mark_status(conn, document_id=doc.id, status=status, error=error[:MAX_REASON_CHARS])
    runtime.metrics.document_ingested("failed" if final else "retried")


async def requeue_lost(runtime: Runtime, *, idle_seconds: float) -> list[uuid.UUID]:
    """Queue again the documents whose job was lost (aborted at shutdown, or its worker died)."""
    async with runtime.engine.begin() as conn:
        lost = await store.without_live_job(conn, task_name=jobs.INGEST_TASK, idle_seconds=idle_seconds)
        for document_id in lost:
            await store.mark_status(conn, document_id=document_id, status="queued")
        await jobs.defer_ingest(conn, document_ids=lost)
    return lost
