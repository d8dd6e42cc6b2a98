"""Uploads of several files: each accepted or rejected on its own with its reason, copies of a document under
another name refused, retries refused when the file itself is the problem, and progress while large files index."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
import sqlalchemy as sa
from procrastinate import RetryStrategy

from memex.accounts.models import User
from memex.jobs.app import build_app, run_worker
from memex.runtime import Runtime
from tests.api.test_documents import client_with, drain, files, key_client
from tests.conftest import DATA
from tests.factories import Factory

GOOD = b"# Good\n\nThe quorbit schedule runs on Tuesdays.\n"
ACCEPTED = ".docx, .htm, .html, .json, .markdown, .md, .org, .pdf, .rst, .text, .txt"


@pytest.fixture
async def kb(make: Factory, alice: User) -> uuid.UUID:
    return (await make.kb(alice, name="team")).id


@pytest.fixture
async def api(make: Factory, alice: User) -> httpx.AsyncClient:
    return await key_client(make, alice)


async def listed(api: httpx.AsyncClient, kb: uuid.UUID) -> list[tuple[str, str, str]]:
    docs = (await api.get(f"/api/kbs/{kb}/documents")).json()["documents"]
    return [(d["name"], d["status"], d["sha256"]) for d in docs]


async def test_a_batch_accepts_the_good_files_and_lists_each_rejected_one_with_its_reason(
    runtime: Runtime, api: httpx.AsyncClient, kb: uuid.UUID
) -> None:
    await api.post(f"/api/kbs/{kb}/documents", files=[("files", ("notes.md", GOOD))])
    await drain(runtime)
    before = await listed(api, kb)
    body = [
        ("files", ("photo.png", b"\x89PNG\r\n\x1a\n")),
        ("files", ("good.md", b"# Other\n\nA different page.\n")),
        ("files", ("empty.md", (DATA / "empty.md").read_bytes())),
        ("files", ("../escape.md", b"# no\n")),
        # Named like the document already there: a bad new version must not touch it.
        ("files", ("notes.md", (DATA / "binary.md").read_bytes())),
        ("files", ("fake.pdf", b"just some text\n")),
    ]
    response = await api.post(f"/api/kbs/{kb}/documents", files=body)
    assert response.status_code == 202, response.text
    assert [(d["name"], d["status"]) for d in response.json()["documents"]] == [("good.md", "queued")]
    assert response.json()["rejected"] == [
        {"name": "photo.png", "reason": f"file type .png is not accepted; accepted types: {ACCEPTED}"},
        {"name": "empty.md", "reason": "the file is empty"},
        {
            "name": "../escape.md",
            "reason": "invalid file name '../escape.md': use a relative path such as notes/today.md",
        },
        {"name": "notes.md", "reason": "binary content where .md text was expected"},
        {"name": "fake.pdf", "reason": "the content is not a PDF file (no %PDF- header)"},
    ]
    await drain(runtime)
    after = await listed(api, kb)
    assert [d for d in after if d[0] == "notes.md"] == before
    assert [(name, status) for name, status, _ in after] == [("good.md", "indexed"), ("notes.md", "indexed")]


async def test_when_every_file_is_rejected_the_error_lists_each_and_nothing_changes(
    runtime: Runtime, api: httpx.AsyncClient, kb: uuid.UUID
) -> None:
    await api.post(f"/api/kbs/{kb}/documents", files=[("files", ("notes.md", GOOD))])
    before = await listed(api, kb)

    same = [("files", ("a.png", b"\x89PNG\r\n\x1a\n")), ("files", ("b.exe", b"MZ\x90\x00"))]
    response = await api.post(f"/api/kbs/{kb}/documents", files=same)
    assert response.status_code == 415
    assert response.json()["detail"] == (
        f"none of the 2 files was accepted: a.png: file type .png is not accepted; accepted types: {ACCEPTED}; "
        f"b.exe: file type .exe is not accepted; accepted types: {ACCEPTED}"
    )
    assert [r["name"] for r in response.json()["rejected"]] == ["a.png", "b.exe"]

    mixed = [("files", ("a.png", b"\x89PNG\r\n\x1a\n")), ("files", ("empty.md", b"  \n"))]
    response = await api.post(f"/api/kbs/{kb}/documents", files=mixed)
    assert response.status_code == 422
    assert response.json()["rejected"][1] == {"name": "empty.md", "reason": "the file is empty"}
    assert await listed(api, kb) == before


async def test_the_same_content_under_another_name_is_a_duplicate(
    runtime: Runtime, make: Factory, alice: User, api: httpx.AsyncClient, kb: uuid.UUID
) -> None:
    first = await api.post(f"/api/kbs/{kb}/documents", files=[("files", ("plan.md", GOOD))])
    assert first.status_code == 202

    copy = await api.post(f"/api/kbs/{kb}/documents", files=[("files", ("plan (1).md", GOOD))])
    assert copy.status_code == 409
    assert copy.json()["detail"] == "plan (1).md: the same content is already in this knowledge base as 'plan.md'"

    # Beside a new file, and twice within one batch: the copies are rejected, the new file accepted.
    batch = [
        ("files", ("copy.md", GOOD)),
        ("files", ("new.md", b"# New\n\nfresh\n")),
        ("files", ("new2.md", b"# New\n\nfresh\n")),
    ]
    response = await api.post(f"/api/kbs/{kb}/documents", files=batch)
    assert response.status_code == 202
    assert [d["name"] for d in response.json()["documents"]] == ["new.md"]
    assert response.json()["rejected"] == [
        {"name": "copy.md", "reason": "the same content is already in this knowledge base as 'plan.md'"},
        {"name": "new2.md", "reason": "the same content is already in this knowledge base as 'new.md'"},
    ]
    # The same name again is no copy: it is the same document, unchanged.
    again = await api.post(f"/api/kbs/{kb}/documents", files=[("files", ("plan.md", GOOD))])
    assert (again.status_code, again.json()["documents"][0]["id"]) == (202, first.json()["documents"][0]["id"])

    # A synced folder may hold two copies: asked to, the server keeps both, as `memex index` does.
    kept = await api.post(f"/api/kbs/{kb}/documents?duplicates=keep", files=[("files", ("backup/plan.md", GOOD))])
    assert kept.status_code == 202 and kept.json()["rejected"] == []
    # A write-only key is never told what the KB holds, so its copy is stored like any other file.
    writer = await key_client(make, alice, scopes=("write",))
    blind = await writer.post(f"/api/kbs/{kb}/documents", files=[("files", ("other/plan.md", GOOD))])
    assert blind.status_code == 202 and blind.json()["rejected"] == []
    names = [name for name, _, _ in await listed(api, kb)]
    assert names == ["backup/plan.md", "new.md", "other/plan.md", "plan.md"]


async def test_retrying_an_encrypted_pdf_says_why_it_cannot_succeed(
    runtime: Runtime, api: httpx.AsyncClient, kb: uuid.UUID
) -> None:
    response = await api.post(f"/api/kbs/{kb}/documents", files=files("encrypted.pdf"))
    doc_id = response.json()["documents"][0]["id"]
    await drain(runtime)
    failed = (await api.get(f"/api/documents/{doc_id}")).json()
    assert (failed["status"], failed["retryable"]) == ("failed", False)
    retried = await api.post(f"/api/documents/{doc_id}/retry")
    assert retried.status_code == 409
    assert retried.json()["detail"].startswith(
        "encrypted.pdf cannot be indexed as it is (PDF is encrypted (password protected)), so trying again would fail"
    )
    async with runtime.engine.connect() as conn:
        jobs = await conn.execute(sa.text("SELECT count(*) FROM procrastinate_jobs WHERE status = 'todo'"))
        assert jobs.scalar_one() == 0


async def test_a_transient_failure_can_be_retried(runtime: Runtime, api: httpx.AsyncClient, kb: uuid.UUID) -> None:
    # A real database error while storing: the file is fine, the failure is Memex's, so a retry is worth it.
    async with runtime.engine.begin() as conn:
        await conn.execute(sa.text("ALTER TABLE chunks ADD CONSTRAINT refuse_all CHECK (ordinal < 0) NOT VALID"))
    response = await api.post(f"/api/kbs/{kb}/documents", files=[("files", ("plan.md", GOOD))])
    doc_id = response.json()["documents"][0]["id"]
    app = build_app(runtime, retry=RetryStrategy(max_attempts=0))
    async with app.open_async():
        await run_worker(app, concurrency=1, wait=False)
    failed = (await api.get(f"/api/documents/{doc_id}")).json()
    assert (failed["status"], failed["retryable"]) == ("failed", True)
    assert "internal error" in failed["error"]

    async with runtime.engine.begin() as conn:
        await conn.execute(sa.text("ALTER TABLE chunks DROP CONSTRAINT refuse_all"))
    retried = await api.post(f"/api/documents/{doc_id}/retry")
    assert retried.status_code == 202 and retried.json()["status"] == "queued"
    await drain(runtime)
    assert (await api.get(f"/api/documents/{doc_id}")).json()["status"] == "indexed"


async def test_a_large_file_shows_its_progress_while_it_is_indexed(
    runtime: Runtime, api: httpx.AsyncClient, kb: uuid.UUID
) -> None:
    sections = "".join(f"## Part {i}\n\nStep {i} of the quorbit procedure.\n\n" for i in range(600))
    response = await api.post(f"/api/kbs/{kb}/documents", files=[("files", ("manual.md", f"# Manual\n\n{sections}"))])
    doc_id = response.json()["documents"][0]["id"]
    worker = asyncio.create_task(drain(runtime))
    seen: list[tuple[int, int]] = []
    while not worker.done():
        doc = (await api.get(f"/api/documents/{doc_id}")).json()
        if doc["progress"] is not None:
            assert doc["status"] == "indexing" and doc["progress"]["unit"] == "chunks"
            seen.append((doc["progress"]["done"], doc["progress"]["total"]))
        await asyncio.sleep(0.01)
    await worker
    done = (await api.get(f"/api/documents/{doc_id}")).json()
    assert (done["status"], done["progress"]) == ("indexed", None)
    total = done["chunk_count"]
    assert total > 512
    assert {t for _, t in seen} == {total}
    assert any(0 < d < total for d, _ in seen), seen
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


async def test_the_upload_boxes_offer_the_accepted_types(
    runtime: Runtime, make: Factory, alice: User, kb: uuid.UUID
) -> None:
    async for api in client_with(runtime, make, alice, allowed_file_types=[".pdf", "md"], max_upload_mb=5):
        for path in (f"/kbs/{kb}", "/"):
            page = (await api.get(path)).text
            assert 'accept=".md,.pdf" data-max-mb="5"' in page, path
            assert "Markdown, PDF — several at once, up to 5 MiB each." in page, path
