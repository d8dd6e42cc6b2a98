"""Documents over HTTP: upload → job → indexed or failed, size and type limits, download, delete, access.

Batches with rejected files, copies, retries and progress: test_upload_batches.py."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
import sqlalchemy as sa

from memex.accounts.models import User
from memex.api.app import create_app
from memex.jobs.app import build_app, run_worker
from memex.kbs.access import Role
from memex.kbs.store import add_member
from memex.runtime import Runtime
from tests.conftest import DATA
from tests.factories import BASE_URL, Factory


async def drain(runtime: Runtime) -> None:
    """Run a real worker in this event loop until the queue is empty."""
    app = build_app(runtime)
    async with app.open_async():
        await run_worker(app, concurrency=1, wait=False)


async def key_client(make: Factory, user: User, *, scopes: tuple[str, ...] = ("read", "write")) -> httpx.AsyncClient:
    _, key = await make.key(user, scopes=scopes)
    return make.client(key=key)


async def client_with(
    runtime: Runtime, make: Factory, user: User, **settings: object
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app whose settings differ from the test's (same database)."""
    changed = dataclasses.replace(runtime, settings=runtime.settings.model_copy(update=settings))
    app = create_app(changed.settings, runtime=changed)
    _, key = await make.key(user)
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL, headers=headers) as client:
        yield client


@pytest.fixture
async def kb(make: Factory, alice: User) -> uuid.UUID:
    return (await make.kb(alice, name="team")).id


@pytest.fixture
async def api(make: Factory, alice: User) -> httpx.AsyncClient:
    return await key_client(make, alice)


def files(*names: str) -> list[tuple[str, tuple[str, bytes]]]:
    return [("files", (name, (DATA / name).read_bytes())) for name in names]


async def test_uploads_are_indexed_by_the_worker(runtime: Runtime, api: httpx.AsyncClient, kb: uuid.UUID) -> None:
    response = await api.post(f"/api/kbs/{kb}/documents", files=files("sample.md", "sample.pdf"))
    assert response.status_code == 202, response.text
    accepted = response.json()["documents"]
    assert [(d["name"], d["status"]) for d in accepted] == [("sample.md", "queued"), ("sample.pdf", "queued")]

    await drain(runtime)

    listed = (await api.get(f"/api/kbs/{kb}/documents")).json()["documents"]
    assert [(d["name"], d["status"]) for d in listed] == [("sample.md", "indexed"), ("sample.pdf", "indexed")]
    for d in listed:
        assert d["chunk_count"] > 0 and d["error"] is None and len(d["sha256"]) == 64
        assert d["size"] == len((DATA / d["name"]).read_bytes())
    one = (await api.get(f"/api/documents/{accepted[0]['id']}")).json()
    assert one["id"] == accepted[0]["id"] and one["indexed_at"] is not None


async def test_a_relative_path_is_kept_as_the_name(api: httpx.AsyncClient, kb: uuid.UUID) -> None:
    body = [("files", ("notes/2024/today.md", b"# Today\n\nwrote tests\n"))]
    response = await api.post(f"/api/kbs/{kb}/documents", files=body)
    assert response.json()["documents"][0]["name"] == "notes/2024/today.md"
    climbing = [("files", ("../escape.md", b"# no\n"))]
    response = await api.post(f"/api/kbs/{kb}/documents", files=climbing)
    assert response.status_code == 400
    assert "invalid file name" in response.json()["detail"]


async def test_corrupt_file_fails_with_its_reason_and_a_retry_says_why_it_would_fail_again(
    runtime: Runtime, api: httpx.AsyncClient, kb: uuid.UUID
) -> None:
    response = await api.post(f"/api/kbs/{kb}/documents", files=files("corrupt.pdf"))
    doc_id = response.json()["documents"][0]["id"]
    await drain(runtime)
    failed = (await api.get(f"/api/documents/{doc_id}")).json()
    assert failed["status"] == "failed"
    assert failed["error"] == "corrupt PDF: not a valid PDF structure (damaged or truncated file)"
    assert failed["retryable"] is False

    retried = await api.post(f"/api/documents/{doc_id}/retry")
    assert retried.status_code == 409
    assert retried.json()["detail"] == (
        "corrupt.pdf cannot be indexed as it is (corrupt PDF: not a valid PDF structure (damaged or truncated file)), "
        "so trying again would fail the same way: upload a repaired copy under the same name to replace it"
    )
    assert (await api.get(f"/api/documents/{doc_id}")).json()["status"] == "failed"

    good = await api.post(f"/api/kbs/{kb}/documents", files=files("sample.md"))
    await drain(runtime)
    again = await api.post(f"/api/documents/{good.json()['documents'][0]['id']}/retry")
    assert again.status_code == 409
    assert again.json()["detail"] == "only a failed document can be retried; this one is indexed"


async def test_oversized_upload_is_refused_while_streaming(
    runtime: Runtime, make: Factory, alice: User, kb: uuid.UUID
) -> None:
    big = b"# Big\n\n" + b"lorem ipsum dolor sit amet\n" * (2 * 1024 * 1024 // 27)
    boundary = "memexboundary"
    async for api in client_with(runtime, make, alice, max_upload_mb=1):
        response = await api.post(f"/api/kbs/{kb}/documents", files=[("files", ("big.md", big))])
        assert response.status_code == 413
        assert response.json()["detail"] == "the upload is larger than the limit of 1 MiB (MEMEX_MAX_UPLOAD_MB)"

        # Without a Content-Length the body is counted as it arrives, and reading stops at the limit.
        sent = 0

        async def body() -> AsyncIterator[bytes]:
            nonlocal sent
            yield f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="big.md"\r\n\r\n'.encode()
            for _ in range(64):
                sent += 64 * 1024
                yield b"x" * 64 * 1024
            yield f"\r\n--{boundary}--\r\n".encode()

        response = await api.post(
            f"/api/kbs/{kb}/documents",
            content=body(),
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        assert response.status_code == 413
        assert response.json()["detail"].startswith("big.md: the upload is larger than the limit of 1 MiB")
        assert sent < 2 * 1024 * 1024
    async with runtime.engine.connect() as conn:
        assert (await conn.execute(sa.text("SELECT count(*) FROM documents"))).scalar_one() == 0


@pytest.mark.parametrize(
    ("name", "data", "detail"),
    [
        ("photo.png", b"\x89PNG\r\n\x1a\n", "file type .png is not accepted; accepted types: "),
        ("noise.md", (DATA / "binary.md").read_bytes(), "binary content where .md text was expected"),
        ("fake.pdf", b"just some text\n", "the content is not a PDF file (no %PDF- header)"),
        ("fake.docx", b"just some text\n", "the content is not a DOCX file (not a ZIP archive)"),
    ],
)
async def test_wrong_type_or_content_is_refused(
    runtime: Runtime, api: httpx.AsyncClient, kb: uuid.UUID, name: str, data: bytes, detail: str
) -> None:
    alone = await api.post(f"/api/kbs/{kb}/documents", files=[("files", (name, data))])
    assert alone.status_code == 415
    assert alone.json()["detail"].startswith(f"{name}: {detail}")
    assert (await api.get(f"/api/kbs/{kb}/documents")).json()["documents"] == []

    # Beside a good file, the bad one is rejected on its own and the good one accepted.
    body = [("files", ("fine.md", b"# Fine\n\nok\n")), ("files", (name, data))]
    response = await api.post(f"/api/kbs/{kb}/documents", files=body)
    assert response.status_code == 202
    assert [d["name"] for d in response.json()["documents"]] == ["fine.md"]
    [rejected] = response.json()["rejected"]
    assert rejected["name"] == name and rejected["reason"].startswith(detail)
    listed = (await api.get(f"/api/kbs/{kb}/documents")).json()["documents"]
    assert [d["name"] for d in listed] == ["fine.md"]


async def test_allowed_file_types_narrow_the_accepted_types(
    runtime: Runtime, make: Factory, alice: User, kb: uuid.UUID
) -> None:
    async for api in client_with(runtime, make, alice, allowed_file_types=["md"]):
        response = await api.post(f"/api/kbs/{kb}/documents", files=files("sample.pdf"))
        assert response.status_code == 415
        assert response.json()["detail"] == "sample.pdf: file type .pdf is not accepted; accepted types: .md"


async def test_download_returns_the_original_bytes(api: httpx.AsyncClient, kb: uuid.UUID) -> None:
    response = await api.post(f"/api/kbs/{kb}/documents", files=files("sample.pdf"))
    doc_id = response.json()["documents"][0]["id"]
    download = await api.get(f"/api/documents/{doc_id}/file")
    assert download.status_code == 200
    assert download.content == (DATA / "sample.pdf").read_bytes()
    assert download.headers["content-type"] == "application/pdf"
    assert download.headers["content-disposition"].startswith('attachment; filename="sample.pdf"')


async def test_text_gives_the_passages_and_the_source_to_render(
    runtime: Runtime, api: httpx.AsyncClient, kb: uuid.UUID
) -> None:
    response = await api.post(f"/api/kbs/{kb}/documents", files=files("sample.md", "sample.pdf", "sample.txt"))
    ids = {d["name"]: d["id"] for d in response.json()["documents"]}
    await drain(runtime)

    markdown = (await api.get(f"/api/documents/{ids['sample.md']}/text")).json()
    assert markdown["format"] == "markdown"
    assert markdown["source"] == (DATA / "sample.md").read_text()
    assert markdown["document"]["id"] == ids["sample.md"] and markdown["kb"]["name"] == "team"
    passages = markdown["passages"]
    assert len(passages) == markdown["document"]["chunk_count"] > 1
    assert [p["ordinal"] for p in passages] == list(range(len(passages)))
    assert any(p["heading"].endswith("Key rotation") and "grace period" in p["text"] for p in passages), passages

    # The passage ids are the chunk ids search results carry, so a result can point at its place in the document.
    found = (await api.get("/api/search", params={"q": "grace period", "mode": "keyword", "kb": kb})).json()
    hit = next(r for r in found["results"] if r["document_id"] == ids["sample.md"])
    assert hit["chunk_id"] in {p["id"] for p in passages}

    pdf = (await api.get(f"/api/documents/{ids['sample.pdf']}/text")).json()
    assert pdf["format"] == "pdf" and pdf["source"] is None
    assert pdf["passages"] and all(p["location"].startswith("page ") for p in pdf["passages"])
    assert {p["location"] for p in pdf["passages"]} >= {"page 1", "page 2"}

    text = (await api.get(f"/api/documents/{ids['sample.txt']}/text")).json()
    assert text["format"] == "text" and text["source"] is None and text["passages"]


async def test_text_of_an_unknown_or_unreadable_document_is_not_found(
    make: Factory, api: httpx.AsyncClient, kb: uuid.UUID
) -> None:
    doc = await make.document(
        await make.kb(await make.user(), name="theirs"), name="private.md", text="# Secret\n\nHidden words.\n"
    )
    for url in (f"/api/documents/{uuid.uuid4()}/text", f"/api/documents/{doc}/text"):
        response = await api.get(url)
        assert response.status_code == 404 and response.json() == {"detail": "document not found"}
    assert (await api.get("/api/documents/not-an-id/text")).status_code == 422


async def test_a_failed_document_is_not_rendered(runtime: Runtime, api: httpx.AsyncClient, kb: uuid.UUID) -> None:
    # Front matter and nothing else: accepted, then failed for holding no text.
    body = [("files", ("empty-body.md", b"---\ntitle: Nothing here\n---\n"))]
    response = await api.post(f"/api/kbs/{kb}/documents", files=body)
    doc_id = response.json()["documents"][0]["id"]
    await drain(runtime)
    text = (await api.get(f"/api/documents/{doc_id}/text")).json()
    assert text["document"]["status"] == "failed"
    assert (text["format"], text["source"], text["passages"]) == ("markdown", None, [])


async def test_delete_removes_the_document_and_its_chunks(
    runtime: Runtime, api: httpx.AsyncClient, kb: uuid.UUID
) -> None:
    response = await api.post(f"/api/kbs/{kb}/documents", files=files("sample.md"))
    doc_id = response.json()["documents"][0]["id"]
    await drain(runtime)
    deleted = await api.delete(f"/api/documents/{doc_id}")
    assert deleted.status_code == 204
    assert (await api.get(f"/api/documents/{doc_id}")).status_code == 404
    async with runtime.engine.connect() as conn:
        assert (await conn.execute(sa.text("SELECT count(*) FROM chunks"))).scalar_one() == 0
        assert (await conn.execute(sa.text("SELECT count(*) FROM blobs"))).scalar_one() == 0


async def test_rename_keeps_the_chunks(runtime: Runtime, api: httpx.AsyncClient, kb: uuid.UUID) -> None:
    response = await api.post(f"/api/kbs/{kb}/documents", files=files("sample.md"))
    doc_id = response.json()["documents"][0]["id"]
    await drain(runtime)
    renamed = await api.patch(f"/api/documents/{doc_id}", json={"name": "moved/sample.md"})
    assert renamed.status_code == 200
    assert (renamed.json()["name"], renamed.json()["status"]) == ("moved/sample.md", "indexed")
    await api.post(f"/api/kbs/{kb}/documents", files=[("files", ("sample.md", b"# Another\n\nnot the same\n"))])
    clash = await api.patch(f"/api/documents/{doc_id}", json={"name": "sample.md"})
    assert clash.status_code == 409


async def test_access_follows_roles_and_scopes(
    runtime: Runtime, make: Factory, api: httpx.AsyncClient, kb: uuid.UUID
) -> None:
    response = await api.post(f"/api/kbs/{kb}/documents", files=files("sample.md"))
    doc_id = response.json()["documents"][0]["id"]
    team = (await make.kb(await make.user(), name="other")).id
    stranger = await key_client(make, await make.user())
    viewer_user = await make.user()
    viewer = await key_client(make, viewer_user)
    async with runtime.engine.begin() as conn:
        await add_member(conn, kb_id=kb, user_id=viewer_user.id, role=Role.viewer, accepted=True)

    for url in (
        f"/api/kbs/{kb}/documents",
        f"/api/documents/{doc_id}",
        f"/api/documents/{doc_id}/file",
        f"/api/documents/{doc_id}/text",
    ):
        assert (await stranger.get(url)).status_code == 404
        assert (await viewer.get(url)).status_code == 200
    assert (await api.get(f"/api/kbs/{team}/documents")).status_code == 404
    assert (await stranger.delete(f"/api/documents/{doc_id}")).status_code == 404
    upload = await viewer.post(f"/api/kbs/{kb}/documents", files=files("sample.txt"))
    assert upload.status_code == 403
    assert upload.json()["detail"] == "you need the editor role on this knowledge base to do this"
    assert (await viewer.delete(f"/api/documents/{doc_id}")).status_code == 403

    reader_user = await make.user()
    reader = await key_client(make, reader_user, scopes=("read",))
    async with runtime.engine.begin() as conn:
        await add_member(conn, kb_id=kb, user_id=reader_user.id, role=Role.editor, accepted=True)
    upload = await reader.post(f"/api/kbs/{kb}/documents", files=files("sample.txt"))
    assert upload.status_code == 403
    assert "'write' scope" in upload.json()["detail"]
    assert (await make.client().get(f"/api/kbs/{kb}/documents")).status_code == 401
