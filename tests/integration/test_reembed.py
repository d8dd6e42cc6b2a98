"""`memex reembed`: another model's vectors built beside the old ones and swapped in while searches and uploads go on.

The new model is the OpenAI-compatible embeddings double (128 dimensions, a hashed bag of words); the old one is
the bundled local model (384). The re-embedding runs as a real `memex reembed` process; the searches and the
uploads run in this process, through their services, on another runtime that must follow the swap by itself.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import sqlalchemy as sa

from memex.documents import store as documents
from memex.embeddings import store as embedding_store
from memex.ingest.chunking import Chunk
from memex.kbs.access import Actor
from memex.runtime import Runtime
from memex.search import service as search
from memex.search.models import SearchRequest
from tests.doubles.openai_server import OpenAIDouble
from tests.doubles.script import Behaviour, hang
from tests.integration.test_jobs import doc, drain, make_kb, put

WORDS = ["heron", "river", "granite", "lantern", "orchard", "compass", "harbour", "meadow", "glacier", "violin"]


def cli_env(database_url: str, tmp_path: Path, model_cache_dir: Path, double: OpenAIDouble | None) -> dict[str, str]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MEMEX_")},
        "MEMEX_DATABASE_URL": database_url,
        "MEMEX_DATA_DIR": str(tmp_path / "data"),
        "MEMEX_MODEL_CACHE_DIR": str(model_cache_dir),
        "COLUMNS": "200",
    }
    if double is not None:
        env |= {"MEMEX_EMBEDDING_PROVIDER": "openai", "MEMEX_EMBEDDING_BASE_URL": double.base_url}
    return env


async def memex(*args: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "memex", *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )


async def finished(process: asyncio.subprocess.Process) -> tuple[int, str]:
    _, err = await asyncio.wait_for(process.communicate(), 240)
    assert process.returncode is not None
    return process.returncode, err.decode()


async def vector_dimensions(runtime: Runtime) -> set[int]:
    async with runtime.engine.connect() as conn:
        return set((await conn.execute(sa.text("SELECT DISTINCT vector_dims(embedding) FROM chunks"))).scalars())


class Searches:
    """Vector and hybrid searches, one after another, until stopped; every failure is kept."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime, self.count, self.failures = runtime, 0, list[str]()
        self._stop = asyncio.Event()

    async def run(self) -> None:
        i = 0
        while not self._stop.is_set():
            word = WORDS[i % len(WORDS)]
            mode = ("vector", "hybrid")[i % 2]
            try:
                found = await search.search(self.runtime, Actor.system(), SearchRequest(query=word, mode=mode))  # type: ignore[arg-type]
                if not found:
                    self.failures.append(f"{mode} {word!r}: no results")
            except Exception as exc:
                self.failures.append(f"{mode} {word!r}: {type(exc).__name__}: {exc}")
            self.count, i = self.count + 1, i + 1
            await asyncio.sleep(0.01)

    def stop(self) -> None:
        self._stop.set()


async def test_reembed_swaps_models_with_searches_and_uploads_running(
    runtime: Runtime, database_url: str, tmp_path: Path, model_cache_dir: Path, openai_double: OpenAIDouble
) -> None:
    kb_id = await make_kb(runtime)
    texts = [
        (f"{w}.md", f"# About the {w}\n\nThis note is all about the {w}: the {w} and only the {w}.\n") for w in WORDS
    ]
    await put(runtime, kb_id, *[(name, text.encode()) for name, text in texts])
    await drain(runtime)
    assert await vector_dimensions(runtime) == {384}
    openai_double.set_default(Behaviour(first_token_delay=0.05), endpoint="embed")  # a remote model's latency

    searches = Searches(runtime)
    searching = asyncio.create_task(searches.run())
    process = await memex(
        "reembed",
        "--model",
        "double-embed",
        "--dimension",
        "128",
        env=cli_env(database_url, tmp_path, model_cache_dir, openai_double),
    )
    # Uploads while it runs: each is embedded by whichever model is current when it is written.
    uploaded = []
    for i in range(3):
        uploaded += await put(
            runtime, kb_id, (f"late{i}.md", f"# Late {i}\n\nA late note about the meadow {i}.\n".encode())
        )
        await drain(runtime)
    code, err = await finished(process)
    before = searches.count
    deadline = time.monotonic() + 30
    while searches.count < before + 10 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    searches.stop()
    await searching

    assert code == 0, err
    assert "search now uses double-embed (128 dimensions)" in err and "MEMEX_EMBEDDING_DIMENSION=128" in err
    assert searches.failures == [] and searches.count > 20
    assert runtime.embedding_generation == 1
    assert await vector_dimensions(runtime) == {128}
    for late in uploaded:
        assert (await doc(runtime, late.id)).status == "indexed"
    # After the swap the queries go to the new model, and the ranking is its ranking.
    asked = {str(text) for r in openai_double.embeddings for text in r.body["input"]}
    assert set(WORDS) & asked
    top = await search.search(runtime, Actor.system(), SearchRequest(query="glacier", mode="vector", limit=1))
    assert top[0].path == "glacier.md"

    # A process still configured for the old model refuses, and says what to set.
    old = await memex("search", "heron", env=cli_env(database_url, tmp_path, model_cache_dir, None))
    code, err = await finished(old)
    assert code == 1 and "double-embed (128 dimensions)" in " ".join(err.split())

    # Back again, with searches still running: the kept vectors, plus those of chunks written since.
    searches = Searches(runtime)
    searching = asyncio.create_task(searches.run())
    process = await memex("reembed", "--rollback", env=cli_env(database_url, tmp_path, model_cache_dir, openai_double))
    code, err = await finished(process)
    await asyncio.sleep(0.3)
    searches.stop()
    await searching
    assert code == 0, err
    assert "search now uses all-MiniLM-L6-v2 (384 dimensions)" in err
    assert searches.failures == []
    assert runtime.embedding_generation == 2 and await vector_dimensions(runtime) == {384}
    top = await search.search(runtime, Actor.system(), SearchRequest(query="a glacier of ice", mode="vector", limit=1))
    assert top[0].path == "glacier.md"

    process = await memex("reembed", "--discard-previous", env=cli_env(database_url, tmp_path, model_cache_dir, None))
    code, err = await finished(process)
    assert code == 0 and "dropped the previous vectors (double-embed (128 dimensions))" in err
    async with runtime.engine.connect() as conn:
        assert await embedding_store.column_dimension(conn, "embedding_previous") is None


async def test_an_interrupted_reembed_resumes_where_it_stopped(
    runtime: Runtime, database_url: str, tmp_path: Path, model_cache_dir: Path, openai_double: OpenAIDouble
) -> None:
    kb_id = await make_kb(runtime)
    rng = np.random.default_rng(7)
    async with runtime.engine.begin() as conn:
        for d in range(6):
            sha = uuid.uuid4().hex
            doc_id = await documents.put_document(
                conn,
                kb_id=kb_id,
                source_path=f"d{d}.md",
                title=f"d{d}",
                mime="text/markdown",
                file_type="md",
                sha256=sha,
                data=sha.encode(),
                status="indexing",
                modified_at=None,
            )
            chunks = [
                Chunk(ordinal=i, heading="", context="", location="", text=f"chunk {d}-{i}", token_count=2)
                for i in range(100)
            ]
            vectors = rng.standard_normal((100, 384)).astype(np.float32)
            await documents.replace_chunks(conn, document_id=doc_id, kb_id=kb_id, chunks=chunks, vectors=vectors)
    env = cli_env(database_url, tmp_path, model_cache_dir, openai_double) | {"MEMEX_EMBEDDING_TIMEOUT_SECONDS": "120"}

    # The probe and the first batch of 256 (four requests of 64) are answered; the second batch never is, and
    # the process is killed.
    openai_double.push(Behaviour(), times=5, endpoint="embed")
    openai_double.set_default(hang(), endpoint="embed")
    process = await memex("reembed", "--model", "double-embed", "--dimension", "128", env=env)
    await openai_double.wait_for(lambda d: len(d.embeddings) == 6, timeout=60, what="the second batch")
    process.send_signal(signal.SIGKILL)
    await process.wait()
    async with runtime.engine.connect() as conn:
        assert await embedding_store.progress(conn, "embedding_next") == (256, 600)
    assert await vector_dimensions(runtime) == {384}  # search never saw the half-made vectors

    openai_double.reset()
    code, err = await finished(await memex("reembed", "--model", "double-embed", "--dimension", "128", env=env))
    assert code == 0, err
    assert "344 chunks embedded" in err
    assert sum(len(r.body["input"]) for r in openai_double.embeddings) == 1 + 344  # the probe, then only the rest
    assert await vector_dimensions(runtime) == {128}
