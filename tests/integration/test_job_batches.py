"""An ingestion job takes the next waiting uploads with it and embeds their chunks together (`jobs/batching.py`)."""

import time
from collections.abc import Sequence

from memex.embeddings.base import Embedder, Vectors
from memex.runtime import Runtime
from tests.conftest import DATA
from tests.integration.test_jobs import FailingEmbedder, chunk_texts, doc, drain, job_rows, make_kb, put


class CountingEmbedder:
    """Embeds for real, slowly enough that the documents parsed meanwhile wait for the next call; counts calls."""

    def __init__(self, inner: Embedder) -> None:
        self.inner, self.name, self.dimension = inner, inner.name, inner.dimension
        self.calls: list[int] = []

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        self.calls.append(len(texts))
        time.sleep(0.5)
        return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> Vectors:
        return self.inner.embed_query(text)


def note(n: int) -> tuple[str, bytes]:
    return f"n{n}.md", f"# Note {n}\n\nNote number {n} is about badgers and their setts.\n".encode()


async def test_one_job_embeds_the_waiting_uploads_together(runtime: Runtime) -> None:
    kb_id, other_kb = await make_kb(runtime), await make_kb(runtime, "other")
    embedder = CountingEmbedder(runtime.embedder)
    runtime.use_embedder(embedder)
    docs = await put(runtime, kb_id, *(note(n) for n in range(6)))
    docs += await put(runtime, other_kb, note(6))
    await drain(runtime)
    for d in docs:
        done = await doc(runtime, d.id)
        assert done.status == "indexed", done.error
        assert any("badgers" in t for t in await chunk_texts(runtime, d.id))
    # The first document is embedded at once; the others, parsed meanwhile, in one more call.
    assert len(embedder.calls) <= 2 and sum(embedder.calls) == len(docs)
    # Every job ends as if it had run itself: succeeded, in one attempt.
    assert [(r.status, r.attempts) for r in await job_rows(runtime)] == [("succeeded", 1)] * len(docs)


async def test_a_bad_file_fails_alone_in_its_batch(runtime: Runtime) -> None:
    kb_id = await make_kb(runtime)
    first, bad, last = await put(runtime, kb_id, note(1), ("corrupt.pdf", (DATA / "corrupt.pdf").read_bytes()), note(2))
    await drain(runtime)
    failed = await doc(runtime, bad.id)
    assert failed.status == "failed" and failed.error and "PDF" in failed.error
    assert [(await doc(runtime, d.id)).status for d in (first, last)] == ["indexed", "indexed"]
    assert [r.status for r in await job_rows(runtime)] == ["succeeded"] * 3


async def test_a_failed_batch_gives_its_documents_back_to_be_tried_alone(runtime: Runtime) -> None:
    kb_id = await make_kb(runtime)
    embedder = FailingEmbedder(runtime.embedder, failures=1)
    runtime.use_embedder(embedder)
    docs = await put(runtime, kb_id, *(note(n) for n in range(3)))
    await drain(runtime)
    assert [(await doc(runtime, d.id)).status for d in docs] == ["indexed"] * 3
    # The batch's one failure counts as an attempt of each of its jobs; each second attempt ran alone.
    assert [(r.status, r.attempts) for r in await job_rows(runtime)] == [("succeeded", 2)] * 3
