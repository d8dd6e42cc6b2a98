"""Hybrid search: modes, filters, the in-query syntax, snippets, and access scoping."""

import shutil
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from memex.errors import InvalidInput, NotFound, QueryTooLong
from memex.ingest.folders import index_paths
from memex.kbs import store as kbs
from memex.kbs.access import Actor
from memex.runtime import Runtime
from memex.search import service
from memex.search.models import SearchFilters, SearchRequest
from tests.conftest import DATA

EXTRA = {
    "zebra.md": "# Zebras\n\nZebras have black and white stripes. Each zebra's stripe pattern is unique.\n",
    "cats.txt": "Cats sleep most of the day.\n\nA cat purrs when content, and sometimes when stressed.\n",
    "draft.md": "# Draft about zebras\n\nThis draft mentions zebras and horses, and is unfinished.\n",
    "unicode.md": "# Straßenbahn\n\nDie Straßenbahn in 東京 ist überfüllt.\n",
}


@pytest.fixture
async def indexed(runtime: Runtime, tmp_path: Path) -> dict[str, uuid.UUID]:
    main = tmp_path / "main"
    main.mkdir()
    for name in ("sample.md", "sample.pdf", "sample.html", "sample.txt"):
        shutil.copy(DATA / name, main / name)
    for name, text in EXTRA.items():
        (main / name).write_text(text)
    other = tmp_path / "other"
    other.mkdir()
    (other / "otters.md").write_text("# Otters\n\nSea otters hold hands while they sleep so they do not drift apart.\n")
    async with runtime.engine.begin() as conn:
        main_kb = (await kbs.create(conn, name="main", owner_id=None)).id
        other_kb = (await kbs.create(conn, name="other", owner_id=None)).id
    for kb_id, folder in ((main_kb, main), (other_kb, other)):
        summary = await index_paths(runtime, kb_id=kb_id, paths=[folder])
        assert summary.failed == []
    return {"main": main_kb, "other": other_kb}


async def _search(runtime: Runtime, query: str, **kwargs: object) -> list[str]:
    filters = kwargs.pop("filters", SearchFilters())
    results = await service.search(runtime, Actor.system(), SearchRequest(query=query, filters=filters, **kwargs))  # type: ignore[arg-type]
    return [Path(r.path).name for r in results]


@pytest.mark.parametrize("mode", ["hybrid", "vector", "keyword"])
async def test_each_mode_finds_the_obvious_document(runtime: Runtime, indexed: dict[str, uuid.UUID], mode: str) -> None:
    names = await _search(runtime, "zebra stripes", mode=mode, limit=3)
    assert names[0] in {"zebra.md", "draft.md"}


async def test_vector_mode_finds_meaning_without_shared_words(runtime: Runtime, indexed: dict[str, uuid.UUID]) -> None:
    assert (await _search(runtime, "feline napping habits", mode="vector", limit=1)) == ["cats.txt"]
    assert await _search(runtime, "feline napping habits", mode="keyword") == []


async def test_results_carry_location_and_highlighted_snippet(runtime: Runtime, indexed: dict[str, uuid.UUID]) -> None:
    results = await service.search(runtime, Actor.system(), SearchRequest(query="purrs", limit=1))
    top = results[0]
    assert Path(top.path).name == "cats.txt"
    assert "<mark>purrs</mark>" in top.snippet
    assert top.kb == indexed["main"] and top.kb_name == "main"
    assert top.score > 0 and top.location.startswith("line")


async def test_pdf_results_name_their_page(runtime: Runtime, indexed: dict[str, uuid.UUID]) -> None:
    results = await service.search(
        runtime, Actor.system(), SearchRequest(query="backup", limit=20, filters=SearchFilters(file_types=("pdf",)))
    )
    assert results and all(r.path.endswith(".pdf") and r.location.startswith("page ") for r in results)


async def test_kb_filter(runtime: Runtime, indexed: dict[str, uuid.UUID]) -> None:
    assert await _search(runtime, "otters sleep", filters=SearchFilters(kb_ids=(indexed["other"],))) == ["otters.md"]
    assert "otters.md" not in await _search(runtime, "otters sleep", filters=SearchFilters(kb_ids=(indexed["main"],)))


async def test_path_prefix_and_date_filters(runtime: Runtime, indexed: dict[str, uuid.UUID], tmp_path: Path) -> None:
    assert await _search(
        runtime, "otters", mode="keyword", filters=SearchFilters(path_prefix=str(tmp_path / "other"))
    ) == ["otters.md"]
    future = datetime.now(UTC) + timedelta(days=1)
    assert await _search(runtime, "zebra", filters=SearchFilters(modified_after=future)) == []
    assert await _search(runtime, "zebra", mode="keyword", filters=SearchFilters(modified_before=future))


async def test_in_query_syntax(runtime: Runtime, indexed: dict[str, uuid.UUID]) -> None:
    assert set(await _search(runtime, 'zebras file:"*.md"', mode="keyword")) == {"zebra.md", "draft.md"}
    assert await _search(runtime, "zebras -draft", mode="keyword") == ["zebra.md"]
    assert await _search(runtime, 'animals +"horses"') == ["draft.md"]
    assert await _search(runtime, 'zebras file:"*.txt"', mode="keyword") == []
    # No .txt file mentions zebras or is near it in meaning: the relevance cut-off leaves them out, and without it
    # hybrid search still ranks the .txt files by meaning, and only them.
    assert await _search(runtime, 'zebras file:"*.txt"') == []
    assert set(await _search(runtime, 'zebras file:"*.txt"', cutoff=False)) == {"cats.txt", "sample.txt"}


async def test_unicode_required_and_excluded_words(runtime: Runtime, indexed: dict[str, uuid.UUID]) -> None:
    assert await _search(runtime, "+überfüllt") == ["unicode.md"]
    assert await _search(runtime, "+ÜBERFÜLLT") == ["unicode.md"]  # case-insensitive beyond ASCII
    assert await _search(runtime, "+überfüll") == []  # whole words only
    assert "unicode.md" in await _search(runtime, "Straßenbahn", limit=20)
    assert "unicode.md" not in await _search(runtime, 'Straßenbahn -"東京"', limit=20)


async def test_bad_requests(runtime: Runtime, indexed: dict[str, uuid.UUID]) -> None:
    with pytest.raises(QueryTooLong, match="limit is 1000"):
        await _search(runtime, "x" * 100_000)
    with pytest.raises(InvalidInput, match="empty"):
        await _search(runtime, "   ")
    with pytest.raises(InvalidInput, match="mode"):
        await _search(runtime, "zebra", mode="fuzzy")
    with pytest.raises(NotFound):
        await _search(runtime, "zebra", filters=SearchFilters(kb_ids=(uuid.uuid4(),)))


async def test_a_user_sees_only_the_kbs_they_belong_to(runtime: Runtime, indexed: dict[str, uuid.UUID]) -> None:
    import sqlalchemy as sa

    async with runtime.engine.begin() as conn:
        user_id = (
            await conn.execute(sa.text("INSERT INTO users (email) VALUES ('u@example.com') RETURNING id"))
        ).scalar_one()
        await kbs.add_member(conn, kb_id=indexed["other"], user_id=user_id, role=kbs.Role.viewer, accepted=True)
    actor = Actor(user_id=user_id)
    results = await service.search(runtime, actor, SearchRequest(query="zebra otters sleep", limit=50))
    assert {r.kb for r in results} == {indexed["other"]}
    with pytest.raises(NotFound):
        await service.search(
            runtime, actor, SearchRequest(query="zebra", filters=SearchFilters(kb_ids=(indexed["main"],)))
        )


async def test_bm25_statistics_follow_inserts_and_deletes(runtime: Runtime, indexed: dict[str, uuid.UUID]) -> None:
    import sqlalchemy as sa

    true_counts = sa.text(
        "SELECT c.kb_id, u.lexeme, count(*) AS df FROM chunks c, unnest(c.tsv) u "
        "GROUP BY c.kb_id, u.lexeme ORDER BY c.kb_id, u.lexeme"
    )
    kept = sa.text("SELECT kb_id, lexeme, df FROM kb_lexeme_stats ORDER BY kb_id, lexeme")
    async with runtime.engine.connect() as conn:
        assert (await conn.execute(kept)).all() == (await conn.execute(true_counts)).all()
        stats = (await conn.execute(sa.text("SELECT sum(chunks) FROM kb_chunk_stats"))).scalar_one()
        assert stats == (await conn.execute(sa.text("SELECT count(*) FROM chunks"))).scalar_one()
    async with runtime.engine.begin() as conn:
        await conn.execute(sa.text("DELETE FROM documents WHERE kb_id = :kb"), {"kb": indexed["other"]})
    async with runtime.engine.connect() as conn:
        assert (await conn.execute(kept)).all() == (await conn.execute(true_counts)).all()
        otter = sa.text("SELECT count(*) FROM kb_lexeme_stats WHERE lexeme = 'otter'")
        assert (await conn.execute(otter)).scalar_one() == 0


async def test_keyword_ranking_prefers_rare_words(runtime: Runtime, tmp_path: Path) -> None:
    folder = tmp_path / "idf"
    folder.mkdir()
    for i in range(8):
        (folder / f"common{i}.txt").write_text(f"Note {i}: the harbour was busy today with boats.\n")
    (folder / "rare.txt").write_text("Note: the harbour saw a narwhal today.\n")
    async with runtime.engine.begin() as conn:
        kb_id = (await kbs.create(conn, name="idf", owner_id=None)).id
    await index_paths(runtime, kb_id=kb_id, paths=[folder])
    # Every document matches "harbour"; only one has the rare "narwhal", which must decide the order.
    names = await _search(runtime, "harbour narwhal", mode="keyword", limit=3)
    assert names[0] == "rare.txt" and len(names) == 3


LIGHTHOUSE = [
    "The lighthouse stands on the northern cape and was built from granite in the last century.",
    "Its lamp is cleaned every morning by the keeper, who climbs two hundred steps to reach it.",
    "In winter storms the waves reach the gallery, and the keeper stays inside for days at a time.",
    "Ships passing the cape count the flashes, three every twenty seconds, to know where they are.",
    "The foghorn was replaced by an electric one, which the villagers say sounds like a cow.",
    "Visitors may climb the tower on Sundays in summer, when the weather allows it.",
]


@pytest.mark.parametrize("mode", ["hybrid", "keyword", "vector"])
async def test_snippets_keep_the_matched_sentence_whole(runtime: Runtime, tmp_path: Path, mode: str) -> None:
    folder = tmp_path / "cape"
    folder.mkdir()
    (folder / "lighthouse.txt").write_text(" ".join(LIGHTHOUSE) + "\n")
    async with runtime.engine.begin() as conn:
        kb_id = (await kbs.create(conn, name="cape", owner_id=None)).id
    await index_paths(runtime, kb_id=kb_id, paths=[folder])
    filters = SearchFilters(kb_ids=(kb_id,))
    results = await service.search(
        runtime,
        Actor.system(),
        SearchRequest(query="foghorn villagers", mode=mode, filters=filters, cutoff=False),  # type: ignore[arg-type]
    )
    snippet = results[0].snippet
    text = snippet.replace("<mark>", "").replace("</mark>", "").removeprefix("… ").removesuffix(" …")
    # It starts and ends where sentences of the passage start and end, and holds the matched sentence whole.
    assert any(text.startswith(s) for s in LIGHTHOUSE) and any(text.endswith(s) for s in LIGHTHOUSE), snippet
    if mode != "vector":
        assert "<mark>foghorn</mark>" in snippet and "<mark>villagers</mark>" in snippet
        assert LIGHTHOUSE[4] in text and len(text) <= 320
    else:
        assert "<mark>" not in snippet and text.startswith(LIGHTHOUSE[0])


async def test_search_in_a_small_kb_finds_all_its_neighbours(runtime: Runtime, indexed: dict[str, uuid.UUID]) -> None:
    """HNSW filters after walking the graph; a small KB is searched exactly instead, so nothing is missed."""
    filters = SearchFilters(kb_ids=(indexed["other"],))
    # An unrelated query on purpose (every neighbour, however far): the relevance cut-off is off.
    found = await _search(runtime, "anything at all", mode="vector", limit=10, filters=filters, cutoff=False)
    assert found == ["otters.md"]


async def test_concurrent_document_swaps_keep_bm25_statistics_exact(
    runtime: Runtime, indexed: dict[str, uuid.UUID]
) -> None:
    """Writers replacing chunks of different documents at once, with the same words, neither deadlock nor drift."""
    import asyncio

    import numpy as np
    import sqlalchemy as sa

    from memex.documents import store as documents
    from memex.ingest.chunking import Chunk

    async with runtime.engine.connect() as conn:
        rows = (await conn.execute(sa.text("SELECT id, kb_id FROM documents ORDER BY id"))).all()
    words = ["zebra", "stripe", "otter", "sleep", "cat", "purr", "horse", "draft"]

    async def swap(document_id: uuid.UUID, kb_id: uuid.UUID, round_: int) -> None:
        n = 2 + round_ % 3
        chunks = [
            Chunk(
                ordinal=i, heading="", context="", location="", text=" ".join(words[(i + round_) % 8 :]), token_count=8
            )
            for i in range(n)
        ]
        vectors = np.random.default_rng(round_).normal(size=(n, 384)).astype(np.float32)
        async with runtime.engine.begin() as conn:
            await documents.replace_chunks(conn, document_id=document_id, kb_id=kb_id, chunks=chunks, vectors=vectors)

    for round_ in range(4):
        await asyncio.gather(*(swap(r.id, r.kb_id, round_ + i) for i, r in enumerate(rows)))

    async with runtime.engine.connect() as conn:
        true_counts = await conn.execute(
            sa.text(
                "SELECT c.kb_id, u.lexeme, count(*) FROM chunks c, unnest(c.tsv) u "
                "GROUP BY c.kb_id, u.lexeme ORDER BY c.kb_id, u.lexeme"
            )
        )
        kept = await conn.execute(sa.text("SELECT kb_id, lexeme, df FROM kb_lexeme_stats ORDER BY kb_id, lexeme"))
        assert kept.all() == true_counts.all()
        stats = await conn.execute(sa.text("SELECT kb_id, chunks FROM kb_chunk_stats WHERE chunks > 0 ORDER BY kb_id"))
        counts = await conn.execute(sa.text("SELECT kb_id, count(*) FROM chunks GROUP BY kb_id ORDER BY kb_id"))
        assert stats.all() == counts.all()


async def test_a_small_kb_is_searched_exactly_once_the_statement_is_prepared(
    runtime: Runtime, indexed: dict[str, uuid.UUID]
) -> None:
    """Searches repeat the same statement, which gets prepared; a cached plan must not carry HNSW into a small KB."""
    import hashlib

    import numpy as np
    import sqlalchemy as sa

    from memex.documents import store as documents
    from memex.ingest.chunking import Chunk

    rng = np.random.default_rng(7)
    kb_ids = {}
    async with runtime.engine.begin() as conn:
        for name, n in (("big", 3000), ("small", 8)):
            kb_id = kb_ids[name] = (await kbs.create(conn, name=name, owner_id=None)).id
            data = name.encode()
            sha = hashlib.sha256(data).hexdigest()
            doc = await documents.put_document(
                conn, kb_id=kb_id, source_path=f"{name}.txt", title=name, mime="text/plain", file_type="txt",
                sha256=sha, data=data, status="indexing", modified_at=None,
            )  # fmt: skip
            chunks = [Chunk(i, "", "", f"line {i}", f"{name} chunk {i}", 3) for i in range(n)]
            vectors = rng.normal(size=(n, 384)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            await documents.replace_chunks(conn, document_id=doc, kb_id=kb_id, chunks=chunks, vectors=vectors)

    # Postgres picks a cached generic plan when it estimates it no worse; make it always do so here.
    async with runtime.engine.begin() as conn:
        await conn.execute(sa.text("SELECT set_config('plan_cache_mode', 'force_generic_plan', false)"))
        name = (await conn.execute(sa.text("SELECT current_database()"))).scalar_one()
        await conn.execute(sa.text(f'ALTER DATABASE "{name}" SET plan_cache_mode = force_generic_plan'))
    await runtime.engine.dispose()
    for i in range(12):  # the same statement over every KB: prepared by the sixth time, on a generic plan
        assert len(await _search(runtime, f"question number {i}", mode="vector", limit=10, cutoff=False)) == 10
    small = SearchFilters(kb_ids=(kb_ids["small"],))
    for mode in ("vector", "hybrid"):
        results = await service.search(
            runtime,
            Actor.system(),
            SearchRequest(query="question number 1", mode=mode, limit=10, filters=small, cutoff=False),
        )
        assert len(results) == 8, mode
