"""The one ingestion path (`ingest/pipeline.py`): no blob outlives its last document, and a model swap is followed."""

import asyncio
import hashlib
from collections.abc import Sequence
from pathlib import Path

import pytest
import sqlalchemy as sa

from memex.api.app import create_app
from memex.documents import service
from memex.documents.service import Upload
from memex.embeddings.base import Embedder, Vectors
from memex.embeddings.store import MODEL_KEY
from memex.ingest.folders import index_paths
from memex.kbs import service as kbs_service
from memex.kbs.access import Actor
from memex.runtime import Runtime
from memex.settings import Settings
from tests.factories import Factory
from tests.integration.test_jobs import drain, make_kb


@pytest.fixture
async def make(runtime: Runtime, settings: Settings) -> Factory:
    return Factory(runtime=runtime, app=create_app(settings, runtime=runtime))


async def assert_blobs_belong_to_documents(runtime: Runtime, *, present: Sequence[bytes] = ()) -> None:
    """Every row of `blobs` is some document's bytes, and each of `present` is stored whole."""
    async with runtime.engine.connect() as conn:
        orphans = await conn.execute(
            sa.text("SELECT sha256 FROM blobs b WHERE NOT EXISTS (SELECT 1 FROM documents d WHERE d.sha256 = b.sha256)")
        )
        assert [r.sha256 for r in orphans] == []
        for data in present:
            stored = await conn.execute(
                sa.text("SELECT data FROM blobs WHERE sha256 = :sha"), {"sha": hashlib.sha256(data).hexdigest()}
            )
            assert bytes(stored.scalar_one()) == data


async def blob_count(runtime: Runtime) -> int:
    async with runtime.engine.connect() as conn:
        return int((await conn.execute(sa.text("SELECT count(*) FROM blobs"))).scalar_one())


async def test_reindexing_a_changed_file_keeps_only_the_current_bytes(runtime: Runtime, tmp_path: Path) -> None:
    kb_id = await make_kb(runtime, "notes")
    first, second = b"# Otters\n\nOtters hold hands.\n", b"# Otters\n\nOtters crack shells on rocks.\n"
    (tmp_path / "a.md").write_bytes(first)
    (tmp_path / "copy.md").write_bytes(first)  # the same bytes under another name: one blob for both
    assert (await index_paths(runtime, kb_id=kb_id, paths=[tmp_path])).added == 2
    assert await blob_count(runtime) == 1

    (tmp_path / "a.md").write_bytes(second)
    assert (await index_paths(runtime, kb_id=kb_id, paths=[tmp_path])).updated == 1
    # The copy still uses the first version's bytes: they stay; the new version's are there too.
    await assert_blobs_belong_to_documents(runtime, present=[first, second])
    assert await blob_count(runtime) == 2

    (tmp_path / "copy.md").write_bytes(second)
    assert (await index_paths(runtime, kb_id=kb_id, paths=[tmp_path])).updated == 1
    await assert_blobs_belong_to_documents(runtime, present=[second])
    assert await blob_count(runtime) == 1  # the first version had no document left


async def test_deleting_documents_and_kbs_takes_their_bytes(runtime: Runtime, make: Factory) -> None:
    owner = await make.user()
    kb, other = await make.kb(owner), await make.kb(owner)
    shared, own, kept = "# Shared\n\nHerons wade.\n", "# Own\n\nKingfishers dive.\n", "# Kept\n\nEgrets wait.\n"
    doc = await make.document(kb, name="own.md", text=own)
    await make.document(kb, name="shared.md", text=shared)
    await make.document(other, name="shared.md", text=shared)
    await make.document(other, name="kept.md", text=kept)
    assert await blob_count(runtime) == 3

    async with runtime.engine.begin() as conn:
        await service.delete(conn, Actor.system(), doc)
    await assert_blobs_belong_to_documents(runtime, present=[shared.encode(), kept.encode()])
    assert await blob_count(runtime) == 2

    async with runtime.engine.begin() as conn:
        await kbs_service.delete_kb(conn, Actor.system(), kb.id)
    # The other KB's copy of the shared file keeps its bytes.
    await assert_blobs_belong_to_documents(runtime, present=[shared.encode(), kept.encode()])
    async with runtime.engine.begin() as conn:
        await kbs_service.delete_kb(conn, Actor.system(), other.id)
    assert await blob_count(runtime) == 0


async def test_replacing_by_upload_keeps_only_the_current_bytes(runtime: Runtime) -> None:
    kb_id = await make_kb(runtime)

    async def upload(data: bytes) -> None:
        async def receive() -> list[Upload]:
            return [Upload(name="a.md", data=data)]

        await service.upload(runtime, Actor.system(), kb_id=kb_id, receive=receive)

    versions = [b"# A\n\nthe first version\n", b"# A\n\nthe second version\n", b"# A\n\nthe third version\n"]
    await upload(versions[0])
    await drain(runtime)
    await upload(versions[1])
    # Replaced before its job ran: the queued version's bytes are there for it, the old ones are gone.
    await assert_blobs_belong_to_documents(runtime, present=[versions[1]])
    await upload(versions[2])
    await drain(runtime)
    await assert_blobs_belong_to_documents(runtime, present=[versions[2]])
    assert await blob_count(runtime) == 1


class SwapOnFirstCall:
    """Embeds for real, but the first call lands a model swap (a new generation) before its vectors are written."""

    def __init__(self, inner: Embedder, runtime: Runtime, loop: asyncio.AbstractEventLoop) -> None:
        self.inner, self.runtime, self.loop = inner, runtime, loop
        self.name, self.dimension = inner.name, inner.dimension
        self.calls = 0

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        self.calls += 1
        if self.calls == 1:
            asyncio.run_coroutine_threadsafe(self._swap(), self.loop).result()
        return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> Vectors:
        return self.inner.embed_query(text)

    async def _swap(self) -> None:
        async with self.runtime.engine.begin() as conn:
            await conn.execute(
                sa.text(
                    "UPDATE memex_meta SET value = jsonb_set(value, '{generation}', "
                    "to_jsonb(coalesce((value ->> 'generation')::int, 0) + 1)) WHERE key = :key"
                ),
                {"key": MODEL_KEY},
            )


async def test_memex_index_embeds_again_after_a_model_swap(runtime: Runtime, tmp_path: Path) -> None:
    kb_id = await make_kb(runtime, "notes")
    before = runtime.embedding_generation
    embedder = SwapOnFirstCall(runtime.embedder, runtime, asyncio.get_running_loop())
    runtime.use_embedder(embedder)
    (tmp_path / "a.md").write_text("# Swaps\n\nThe vectors are made again with the model swapped in.\n")
    summary = await index_paths(runtime, kb_id=kb_id, paths=[tmp_path])
    assert (summary.added, summary.failed) == (1, [])
    assert embedder.calls == 2
    assert runtime.embedding_generation == before + 1
    async with runtime.engine.connect() as conn:
        status = (await conn.execute(sa.text("SELECT status FROM documents WHERE kb_id = :kb"), {"kb": kb_id})).one()
    assert status == ("indexed",)


async def test_an_upload_job_embeds_again_after_a_model_swap(runtime: Runtime) -> None:
    kb_id = await make_kb(runtime)
    embedder = SwapOnFirstCall(runtime.embedder, runtime, asyncio.get_running_loop())
    runtime.use_embedder(embedder)

    async def receive() -> list[Upload]:
        return [Upload(name="a.md", data=b"# Swaps\n\nAn upload follows the swap too.\n")]

    (doc,) = (await service.upload(runtime, Actor.system(), kb_id=kb_id, receive=receive)).documents
    await drain(runtime)
    async with runtime.engine.begin() as conn:
        assert (await service.get(conn, Actor.system(), doc.id)).status == "indexed"
    assert embedder.calls == 2
