"""GET /api/search: modes, filters, limits, and only what the caller may read."""

from __future__ import annotations

import uuid

import httpx
import pytest

from memex.accounts.models import User
from memex.runtime import Runtime
from tests.api.test_documents import key_client
from tests.factories import Factory

NOTES = {
    "garden/herbs.md": b"# Herbs\n\nBasil and thyme grow well on a sunny balcony; water the basil every morning.\n",
    "garden/trees.md": b"# Trees\n\nAn apple tree needs a pollinator nearby and pruning in late winter.\n",
    "kitchen/bread.txt": b"Sourdough bread rises slowly overnight in a cool kitchen.\n",
}


@pytest.fixture
async def api(make: Factory, alice: User) -> httpx.AsyncClient:
    return await key_client(make, alice)


@pytest.fixture
async def kb(make: Factory, alice: User) -> uuid.UUID:
    garden = await make.kb(alice, name="garden")
    for name, data in NOTES.items():
        await make.document(garden, name=name, text=data.decode())
    return garden.id


@pytest.mark.parametrize("mode", ["hybrid", "vector", "keyword"])
async def test_each_mode_finds_the_document(api: httpx.AsyncClient, kb: uuid.UUID, mode: str) -> None:
    response = await api.get("/api/search", params={"q": "basil balcony", "mode": mode})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert results[0]["path"] == "garden/herbs.md"
    assert set(results[0]) == {
        "document_id", "kb", "kb_name", "title", "path", "heading", "location", "text", "snippet", "score", "chunk_id"
    }  # fmt: skip
    assert results[0]["kb"] == str(kb)
    assert [r["score"] for r in results] == sorted((r["score"] for r in results), reverse=True)


async def test_filters_and_limit(api: httpx.AsyncClient, kb: uuid.UUID) -> None:
    async def search(**params: object) -> list[str]:
        response = await api.get("/api/search", params={"q": "grow bread tree", **params})
        assert response.status_code == 200, response.text
        return [r["path"] for r in response.json()["results"]]

    assert set(await search(type="txt")) == {"kitchen/bread.txt"}
    assert set(await search(path="garden/")) == {"garden/herbs.md", "garden/trees.md"}
    assert len(await search(limit=1)) == 1
    assert set(await search(kb=str(kb))) == set(NOTES)


async def test_over_long_query_is_refused_and_the_server_goes_on(api: httpx.AsyncClient, kb: uuid.UUID) -> None:
    # httpx refuses URLs over 64 KiB; tests/integration/test_serve.py sends 100 KB to a real server.
    response = await api.get("/api/search", params={"q": "a" * 60_000})
    assert response.status_code == 400
    assert response.json()["detail"] == "the query is 60000 characters long; the limit is 1000 (MEMEX_MAX_QUERY_CHARS)"
    assert (await api.get("/api/search", params={"q": "basil"})).status_code == 200


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        ({"q": "basil", "mode": "fuzzy"}, "unknown search mode 'fuzzy': use one of hybrid, vector, keyword"),
        ({"q": "basil", "limit": 0}, "limit must be between 1 and 200"),
        ({"q": "   "}, "the query is empty: type some words to search for"),
    ],
)
async def test_bad_requests_say_what_is_wrong(
    api: httpx.AsyncClient, kb: uuid.UUID, params: dict[str, object], detail: str
) -> None:
    response = await api.get("/api/search", params=params)
    assert response.status_code == 400
    assert response.json()["detail"] == detail


async def test_only_readable_knowledge_bases_are_searched(make: Factory, bob: User, kb: uuid.UUID) -> None:
    other = await key_client(make, bob)
    response = await other.get("/api/search", params={"q": "basil"})
    assert response.json() == {"results": [], "hidden": 0, "next_offset": None}
    response = await other.get("/api/search", params={"q": "basil", "kb": str(kb)})
    assert response.status_code == 404
    assert response.json()["detail"] == "knowledge base not found"
    assert (await make.client().get("/api/search", params={"q": "basil"})).status_code == 401


@pytest.mark.parametrize("mode", ["hybrid", "vector", "semantic"])
async def test_a_query_with_nothing_relevant_finds_nothing_and_says_what_was_cut(
    api: httpx.AsyncClient, kb: uuid.UUID, mode: str
) -> None:
    response = await api.get("/api/search", params={"q": "xyzzy qwertyuiop", "mode": mode})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["results"] == [] and body["next_offset"] is None
    assert body["hidden"] == len(NOTES)
    weak = (await api.get("/api/search", params={"q": "xyzzy qwertyuiop", "mode": mode, "include_weak": "true"})).json()
    assert len(weak["results"]) == len(NOTES) and weak["hidden"] == 0


@pytest.mark.parametrize(("cutoff", "kept"), [(-1.0, len(NOTES)), (0.99, 0)])
async def test_the_cut_off_is_the_setting(
    runtime: Runtime, api: httpx.AsyncClient, kb: uuid.UUID, cutoff: float, kept: int
) -> None:
    runtime.settings = runtime.settings.model_copy(update={"search_min_similarity": cutoff})
    unrelated = (await api.get("/api/search", params={"q": "xyzzy qwertyuiop", "mode": "vector"})).json()
    assert len(unrelated["results"]) == kept and unrelated["hidden"] == len(NOTES) - kept
    # A passage that holds a word of the query is never cut, however high the bar.
    worded = (await api.get("/api/search", params={"q": "basil xyzzy", "mode": "hybrid"})).json()["results"]
    assert any("basil" in r["text"].lower() for r in worded)


async def test_semantic_is_the_vector_mode(api: httpx.AsyncClient, kb: uuid.UUID) -> None:
    async def ranked(mode: str) -> list[tuple[str, float]]:
        response = await api.get("/api/search", params={"q": "watering herbs", "mode": mode})
        assert response.status_code == 200, response.text
        return [(r["path"], r["score"]) for r in response.json()["results"]]

    assert await ranked("semantic") == await ranked("vector") != []


async def test_pages_follow_each_other_without_repeats(make: Factory, alice: User, api: httpx.AsyncClient) -> None:
    notes = await make.kb(alice, name="notes")
    for i in range(7):
        await make.document(notes, name=f"basil-{i}.md", text=f"# Basil {i}\n\nBasil note number {i} about basil.\n")
    everything = (await api.get("/api/search", params={"q": "basil", "mode": "keyword", "limit": 20})).json()
    assert len(everything["results"]) == 7 and everything["next_offset"] is None
    seen: list[str] = []
    offset: int | None = 0
    while offset is not None:
        page = (
            await api.get("/api/search", params={"q": "basil", "mode": "keyword", "limit": 3, "offset": offset})
        ).json()
        assert len(page["results"]) <= 3
        seen += [r["chunk_id"] for r in page["results"]]
        offset = page["next_offset"]
    assert seen == [r["chunk_id"] for r in everything["results"]]
    bad = await api.get("/api/search", params={"q": "basil", "offset": -1})
    assert bad.status_code == 400 and bad.json()["detail"] == "offset must be 0 or more"


async def test_document_filter_gives_that_documents_passages_only(api: httpx.AsyncClient, kb: uuid.UUID) -> None:
    first = (await api.get("/api/search", params={"q": "grow bread tree"})).json()["results"]
    document = first[-1]["document_id"]
    only = (await api.get("/api/search", params={"q": "grow bread tree", "document": document})).json()["results"]
    assert only and {r["document_id"] for r in only} == {document}
