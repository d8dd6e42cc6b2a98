"""BM25 term statistics are kept per knowledge base: exact under writes, and private to the KBs searched."""

import asyncio
import uuid

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from memex.accounts.service import actor_for
from memex.api.app import create_app
from memex.documents import store as documents
from memex.ingest.chunking import Chunk
from memex.kbs import service as kbs
from memex.kbs.access import Actor
from memex.runtime import Runtime
from memex.search import service
from memex.search.models import SearchFilters, SearchRequest
from memex.settings import Settings
from tests.factories import Factory

B_NOTES = {
    "harbour.md": "# Harbour log\n\nThe harbour pilot saw a narwhal near the breakwater at dawn.\n",
    "ferry.md": "# Ferry\n\nThe ferry left the harbour late because of fog over the breakwater.\n",
    "project.md": "# Project Bluefin\n\nBluefin is the codename for the new harbour crane; keep it quiet.\n",
    "kitchen.md": "# Kitchen\n\nBake the bread at dawn, then let it cool on the rack.\n",
}
B_QUERIES = ("harbour narwhal", "bluefin crane", "fog over the breakwater at dawn", "bread")


@pytest.fixture
async def make(runtime: Runtime, settings: Settings) -> Factory:
    return Factory(runtime=runtime, app=create_app(settings, runtime=runtime))


async def _scores(runtime: Runtime, actor: Actor, query: str, **kwargs: object) -> list[tuple[int, float]]:
    """(chunk id, score) of each result, best first."""
    request = SearchRequest(query=query, limit=20, **kwargs)  # type: ignore[arg-type]
    return [(r.chunk_id, r.score) for r in await service.search(runtime, actor, request)]


async def _stats_match_a_recount(conn: AsyncConnection) -> None:
    """The trigger-kept counters equal a fresh count over the chunks, KB by KB."""
    kept = await conn.execute(sa.text("SELECT kb_id, lexeme, df FROM kb_lexeme_stats ORDER BY kb_id, lexeme"))
    recount = await conn.execute(
        sa.text(
            "SELECT c.kb_id, u.lexeme, count(*) FROM chunks c, unnest(c.tsv) u "
            "GROUP BY c.kb_id, u.lexeme ORDER BY c.kb_id, u.lexeme"
        )
    )
    assert kept.all() == recount.all()
    kept = await conn.execute(
        sa.text("SELECT kb_id, chunks, lexemes FROM kb_chunk_stats WHERE chunks > 0 ORDER BY kb_id")
    )
    recount = await conn.execute(
        sa.text("SELECT kb_id, count(*), sum(length(tsv)) FROM chunks GROUP BY kb_id ORDER BY kb_id")
    )
    assert kept.all() == recount.all()
    emptied = sa.text("SELECT count(*) FROM kb_chunk_stats WHERE chunks = 0 AND lexemes <> 0")
    assert (await conn.execute(emptied)).scalar_one() == 0


async def test_another_users_uploads_never_move_my_scores_or_ranks(runtime: Runtime, make: Factory) -> None:
    alice, bob = await make.user(), await make.user()
    bob_kb = await make.kb(bob)
    for name, text in B_NOTES.items():
        await make.document(bob_kb, name=name, text=text)
    bob_actor = actor_for(bob)

    async def bobs_view() -> dict[str, list[list[tuple[int, float]]]]:
        return {
            mode: [await _scores(runtime, bob_actor, q, mode=mode, exact=True) for q in B_QUERIES]
            for mode in ("keyword", "hybrid")
        }

    before = await bobs_view()
    assert all(before["keyword"]), before

    # Alice's private KB is full of Bob's query words, and of his codename.
    alice_kb = await make.kb(alice)
    for i in range(12):
        await make.document(
            alice_kb,
            name=f"alice{i}.md",
            text=f"# Note {i}\n\nBluefin harbour narwhal crane breakwater fog dawn bread, again and again ({i}).\n",
        )
    assert await _scores(runtime, actor_for(alice), "bluefin", mode="keyword")

    after = await bobs_view()
    assert after == before
    async with runtime.engine.connect() as conn:
        await _stats_match_a_recount(conn)


async def test_a_search_over_two_kbs_uses_their_combined_statistics(runtime: Runtime, make: Factory) -> None:
    owner = await make.user()
    actor = actor_for(owner)
    first, second, merged = await make.kb(owner), await make.kb(owner), await make.kb(owner)
    texts = {
        "a.md": "# Otters\n\nSea otters hold hands while they sleep.\n",
        "b.md": "# Otters again\n\nOtters eat sea urchins and sleep in kelp.\n",
        "c.md": "# Urchins\n\nSea urchins graze kelp forests.\n",
        "d.md": "# Kelp\n\nKelp grows fast in cold sea water; urchins and otters live there.\n",
        "e.md": "# Weather\n\nA cold front brings rain to the coast.\n",
    }
    for name, text in texts.items():
        await make.document(first if name in ("a.md", "b.md") else second, name=name, text=text)
        await make.document(merged, name=name, text=text)

    async def by_name(kb_ids: tuple[uuid.UUID, ...]) -> dict[str, float]:
        request = SearchRequest(query="sea otters kelp", limit=20, mode="keyword", filters=SearchFilters(kb_ids=kb_ids))
        return {r.path: r.score for r in await service.search(runtime, actor, request)}

    both = await by_name((first.id, second.id))
    together = await by_name((merged.id,))
    assert both.keys() == together.keys() == {"a.md", "b.md", "c.md", "d.md"}
    for path, score in both.items():
        assert score == pytest.approx(together[path], rel=1e-12), path
    alone = await by_name((first.id,))
    assert alone["a.md"] != pytest.approx(both["a.md"])  # the second KB's words count only when it is searched


async def test_statistics_stay_exact_through_updates_deletes_and_kb_deletion(runtime: Runtime, make: Factory) -> None:
    owner = await make.user()
    actor = actor_for(owner)
    kept_kb, doomed_kb = await make.kb(owner), await make.kb(owner)
    ids = {}
    for kb in (kept_kb, doomed_kb):
        for i in range(3):
            ids[kb.id, i] = await make.document(kb, name=f"n{i}.md", text=f"# Note {i}\n\nWombats dig burrows ({i}).\n")
    async with runtime.engine.connect() as conn:
        await _stats_match_a_recount(conn)

    # An update: the same path indexed again with other words.
    await make.document(kept_kb, name="n0.md", text="# Note 0\n\nQuolls hunt at night; wombats sleep.\n")
    # A delete.
    async with runtime.engine.begin() as conn:
        await documents.delete(conn, document_ids=[ids[kept_kb.id, 1]])
    async with runtime.engine.connect() as conn:
        await _stats_match_a_recount(conn)

    async with runtime.engine.begin() as conn:
        await kbs.delete_kb(conn, actor, doomed_kb.id)
    async with runtime.engine.connect() as conn:
        await _stats_match_a_recount(conn)
        for table in ("kb_lexeme_stats", "kb_chunk_stats"):
            left = sa.text(f"SELECT count(*) FROM {table} WHERE kb_id = :kb")
            assert (await conn.execute(left, {"kb": doomed_kb.id})).scalar_one() == 0, table


async def test_writers_of_several_kbs_at_once_neither_deadlock_nor_drift(runtime: Runtime, make: Factory) -> None:
    """Transactions that write two KBs in opposite orders lock both KBs' statistics first, in one order."""
    owner = await make.user()
    kb_a, kb_b = await make.kb(owner), await make.kb(owner)
    docs = {kb.id: [await make.document(kb, name=f"d{i}.md", text=f"Zebra stripes {i}.\n") for i in range(3)]
            for kb in (kb_a, kb_b)}  # fmt: skip
    words = ["zebra", "stripe", "otter", "sleep", "cat", "purr", "horse", "draft"]

    def chunks(round_: int) -> tuple[list[Chunk], np.ndarray]:
        n = 2 + round_ % 3
        made = [Chunk(i, "", "", "", " ".join(words[(i + round_) % 8 :]), 8) for i in range(n)]
        return made, np.random.default_rng(round_).normal(size=(n, 384)).astype(np.float32)

    async def write(order: list[uuid.UUID], slot: int, round_: int) -> None:
        async with runtime.engine.begin() as conn:
            await documents.lock_chunk_stats(conn, kb_ids=order)
            for kb_id in order:
                made, vectors = chunks(round_ + slot)
                await documents.replace_chunks(
                    conn, document_id=docs[kb_id][slot], kb_id=kb_id, chunks=made, vectors=vectors
                )
                await asyncio.sleep(0)  # let the other writers start their statements in between

    for round_ in range(4):
        await asyncio.gather(
            *(write([kb_a.id, kb_b.id] if slot % 2 else [kb_b.id, kb_a.id], slot, round_) for slot in range(3))
        )
    async with runtime.engine.connect() as conn:
        await _stats_match_a_recount(conn)


async def test_migration_0007_backfills_the_statistics_of_existing_chunks(
    runtime: Runtime, make: Factory, database_url: str
) -> None:
    from alembic import command

    from memex.db.engine import sqlalchemy_url
    from memex.db.migrate import alembic_config

    owner = await make.user()
    for kb in (await make.kb(owner), await make.kb(owner)):
        for name, text in B_NOTES.items():
            await make.document(kb, name=name, text=text + f"\n{kb.name}\n")
    await runtime.engine.dispose()

    def migrate(to: str) -> None:
        engine = sa.create_engine(sqlalchemy_url(database_url))
        with engine.connect() as conn:
            (command.downgrade if to == "0006" else command.upgrade)(alembic_config(conn), to)
            conn.commit()
        engine.dispose()

    await asyncio.to_thread(migrate, "0006")
    async with runtime.engine.connect() as conn:
        corpus_wide = await conn.execute(sa.text("SELECT lexeme, df FROM lexeme_stats ORDER BY lexeme"))
        recount = await conn.execute(
            sa.text("SELECT u.lexeme, count(*) FROM chunks c, unnest(c.tsv) u GROUP BY u.lexeme ORDER BY u.lexeme")
        )
        assert corpus_wide.all() == recount.all()
    await runtime.engine.dispose()
    await asyncio.to_thread(migrate, "head")
    async with runtime.engine.connect() as conn:
        await _stats_match_a_recount(conn)
        kbs_with_stats = await conn.execute(sa.text("SELECT count(*) FROM kb_chunk_stats"))
        assert (
            kbs_with_stats.scalar_one()
            == (await conn.execute(sa.text("SELECT count(*) FROM knowledge_bases"))).scalar_one()
        )
