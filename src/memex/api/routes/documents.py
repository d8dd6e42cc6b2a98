"""Documents: upload (202, ingested by a job), list, read, rename, delete, download the original, retry."""

from __future__ import annotations

import uuid
from pathlib import PurePosixPath
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request, Response

from memex.api import uploads
from memex.api.deps import ConnDep, CurrentActor, RuntimeDep, rate_limit
from memex.api.schemas import (
    AcceptedOut,
    DocumentOut,
    DocumentsOut,
    DocumentTextOut,
    RejectedOut,
    RenameIn,
    UploadOut,
    WrittenOut,
    error_responses,
)
from memex.documents import service
from memex.documents.models import Document
from memex.kbs.access import Actor

router = APIRouter(
    prefix="/api", tags=["documents"], responses=error_responses(400, 401, 403, 404, 409, 413, 415, 422, 429)
)


# The body is read as a stream (api/uploads.py), so FastAPI cannot infer its schema: declare it for /docs.
_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": [uploads.FIELD],
                    "properties": {uploads.FIELD: {"type": "array", "items": {"type": "string", "format": "binary"}}},
                }
            }
        },
    }
}


@router.post(
    "/kbs/{kb}/documents",
    status_code=202,
    response_model=UploadOut,
    openapi_extra=_UPLOAD_BODY,
    dependencies=[Depends(rate_limit("upload"))],
)
async def upload(
    kb: uuid.UUID,
    request: Request,
    actor: CurrentActor,
    runtime: RuntimeDep,
    duplicates: Annotated[
        Literal["reject", "keep"],
        Query(
            description="`keep` stores a copy of content the KB already holds under another name, as a folder would."
        ),
    ] = "reject",
) -> UploadOut:
    """Upload files (multipart field `files`, one or many; a name may carry a relative path). Needs editor.

    Each file is accepted or rejected on its own: `rejected` lists the files not taken (type not accepted, empty,
    content not what the name says, a copy of a document already in the KB), each with its reason. When no file
    is accepted the answer is an error whose `detail` gives every reason and whose `rejected` lists them, with the
    status they share (415 for types, 409 for copies, 400 for names and empty files) or 422 when they differ.
    A file named like an existing document replaces it once the new version is indexed. A write-only key gets
    back only what it sent and the ids and status its upload made (an unchanged file or a copy is queued again).
    """

    async def receive() -> list[service.Upload]:
        return await uploads.read_files(request, limit_mb=runtime.settings.max_upload_mb)

    result = await service.upload(runtime, actor, kb_id=kb, receive=receive, keep_duplicates=duplicates == "keep")
    return UploadOut(
        documents=[AcceptedOut(id=d.id, name=d.source_path, status=d.status) for d in result.documents],
        rejected=[RejectedOut(name=r.name, reason=r.error.message) for r in result.rejected],
    )


def _written(doc: Document, actor: Actor) -> DocumentOut | WrittenOut:
    """The document after a change; a write-only key gets its id and status only, never what the KB holds."""
    return DocumentOut.of(doc) if actor.can_read else WrittenOut.of(doc)


@router.get("/kbs/{kb}/documents", response_model=DocumentsOut)
async def list_documents(
    kb: uuid.UUID,
    actor: CurrentActor,
    conn: ConnDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 1000,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> DocumentsOut:
    """The KB's documents by name, a page at a time."""
    docs = await service.list_documents(conn, actor, kb_id=kb, limit=limit, offset=offset)
    return DocumentsOut(documents=[DocumentOut.of(d) for d in docs])


@router.get("/documents/{document_id}", response_model=DocumentOut)
async def get_document(document_id: uuid.UUID, actor: CurrentActor, conn: ConnDep) -> DocumentOut:
    return DocumentOut.of(await service.get(conn, actor, document_id))


@router.get("/documents/{document_id}/text", response_model=DocumentTextOut)
async def document_text(document_id: uuid.UUID, actor: CurrentActor, conn: ConnDep) -> DocumentTextOut:
    """The document as the document page shows it: its KB, its passages in reading order (ids, headings,
    locations, text) and, for Markdown and HTML, the original text to render."""
    return DocumentTextOut.of(await service.text(conn, actor, document_id))


@router.patch("/documents/{document_id}", response_model=DocumentOut | WrittenOut)
async def rename_document(
    document_id: uuid.UUID, body: RenameIn, actor: CurrentActor, conn: ConnDep
) -> DocumentOut | WrittenOut:
    """Rename a document (a moved file): its chunks are kept, nothing is re-indexed. Needs editor.

    A write-only key gets back the id and status only.
    """
    return _written(await service.rename(conn, actor, document_id, name=body.name), actor)


@router.delete("/documents/{document_id}", status_code=204)
async def delete_document(document_id: uuid.UUID, actor: CurrentActor, conn: ConnDep) -> Response:
    """Delete a document and its chunks. Needs editor."""
    await service.delete(conn, actor, document_id)
    return Response(status_code=204)


@router.get("/documents/{document_id}/file", response_class=Response)
async def download(document_id: uuid.UUID, actor: CurrentActor, conn: ConnDep) -> Response:
    """The original file, as uploaded."""
    doc, data = await service.original(conn, actor, document_id)
    filename = PurePosixPath(doc.source_path).name
    return Response(
        content=data,
        media_type=doc.mime,
        headers={
            "Content-Disposition": _attachment(filename),
            # Never let a browser render an uploaded HTML file as a page of this site.
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "sandbox",
        },
    )


def _attachment(filename: str) -> str:
    ascii_name = filename.encode("ascii", "replace").decode().replace('"', "_").replace("\\", "_")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"


@router.post("/documents/{document_id}/retry", status_code=202, response_model=DocumentOut | WrittenOut)
async def retry(document_id: uuid.UUID, actor: CurrentActor, conn: ConnDep) -> DocumentOut | WrittenOut:
    """Queue a failed document for ingestion again. Needs editor (a write-only key gets the id and status only)."""
    return _written(await service.retry(conn, actor, document_id), actor)
