"""Documents: upload (202, ingested by a job), list, read, rename, delete, download the original, retry."""

from __future__ import annotations

import uuid
from datetime import datetime
from pathlib import PurePosixPath
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from memex.api import uploads
from memex.api.deps import CurrentActor, RuntimeDep
from memex.api.schemas import error_responses
from memex.documents import service
from memex.documents.models import Document

router = APIRouter(prefix="/api", tags=["documents"], responses=error_responses(400, 401, 403, 404, 409, 413, 415, 422))


class DocumentOut(BaseModel):
    id: uuid.UUID
    kb: uuid.UUID
    name: str = Field(description="The file's name in the KB: its upload name or, for indexed folders, its path.")
    path: str = Field(description="The same as name; the field search results use.")
    title: str
    mime: str
    file_type: str
    sha256: str
    size: int
    status: str = Field(description="queued, indexing, indexed or failed.")
    error: str | None = Field(description="Why ingestion failed (or why an attempt failed while it is retried).")
    chunk_count: int
    modified_at: datetime | None
    created_at: datetime
    updated_at: datetime
    indexed_at: datetime | None

    @classmethod
    def of(cls, doc: Document) -> DocumentOut:
        return cls(
            id=doc.id,
            kb=doc.kb_id,
            name=doc.source_path,
            path=doc.source_path,
            title=doc.title,
            mime=doc.mime,
            file_type=doc.file_type,
            sha256=doc.sha256,
            size=doc.size,
            status=doc.status,
            error=doc.error,
            chunk_count=doc.chunk_count,
            modified_at=doc.modified_at,
            created_at=doc.created_at,
            updated_at=doc.updated_at,
            indexed_at=doc.indexed_at,
        )


class DocumentsOut(BaseModel):
    documents: list[DocumentOut]


class AcceptedOut(BaseModel):
    id: uuid.UUID
    name: str
    status: str


class UploadOut(BaseModel):
    documents: list[AcceptedOut]


class RenameIn(BaseModel):
    name: str = Field(min_length=1, max_length=service.MAX_NAME_CHARS, examples=["notes/renamed.md"])


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


@router.post("/kbs/{kb}/documents", status_code=202, response_model=UploadOut, openapi_extra=_UPLOAD_BODY)
async def upload(kb: uuid.UUID, request: Request, actor: CurrentActor, runtime: RuntimeDep) -> UploadOut:
    """Upload files (multipart field `files`, one or many; a name may carry a relative path). Needs editor.

    A file named like an existing document replaces it once the new version is indexed.
    """

    async def receive() -> list[service.Upload]:
        return await uploads.read_files(request, limit_mb=runtime.settings.max_upload_mb)

    docs = await service.upload(runtime, actor, kb_id=kb, receive=receive)
    return UploadOut(documents=[AcceptedOut(id=d.id, name=d.source_path, status=d.status) for d in docs])


@router.get("/kbs/{kb}/documents", response_model=DocumentsOut)
async def list_documents(
    kb: uuid.UUID,
    actor: CurrentActor,
    runtime: RuntimeDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 1000,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> DocumentsOut:
    """The KB's documents by name, a page at a time."""
    docs = await service.list_documents(runtime, actor, kb_id=kb, limit=limit, offset=offset)
    return DocumentsOut(documents=[DocumentOut.of(d) for d in docs])


@router.get("/documents/{document_id}", response_model=DocumentOut)
async def get_document(document_id: uuid.UUID, actor: CurrentActor, runtime: RuntimeDep) -> DocumentOut:
    return DocumentOut.of(await service.get(runtime, actor, document_id))


@router.patch("/documents/{document_id}", response_model=DocumentOut)
async def rename_document(
    document_id: uuid.UUID, body: RenameIn, actor: CurrentActor, runtime: RuntimeDep
) -> DocumentOut:
    """Rename a document (a moved file): its chunks are kept, nothing is re-indexed. Needs editor."""
    return DocumentOut.of(await service.rename(runtime, actor, document_id, name=body.name))


@router.delete("/documents/{document_id}", status_code=204)
async def delete_document(document_id: uuid.UUID, actor: CurrentActor, runtime: RuntimeDep) -> Response:
    """Delete a document and its chunks. Needs editor."""
    await service.delete(runtime, actor, document_id)
    return Response(status_code=204)


@router.get("/documents/{document_id}/file", response_class=Response)
async def download(document_id: uuid.UUID, actor: CurrentActor, runtime: RuntimeDep) -> Response:
    """The original file, as uploaded."""
    doc, data = await service.original(runtime, actor, document_id)
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


@router.post("/documents/{document_id}/retry", status_code=202, response_model=DocumentOut)
async def retry(document_id: uuid.UUID, actor: CurrentActor, runtime: RuntimeDep) -> DocumentOut:
    """Queue a failed document for ingestion again. Needs editor."""
    return DocumentOut.of(await service.retry(runtime, actor, document_id))
