"""The hybrid search SQL: vector top-k (HNSW) and full-text top-k, fused by reciprocal rank in one query.

Conditions are chosen from fixed fragments below; every value travels as a bind parameter.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from memex.search.models import Mode

# Reciprocal rank fusion constant (Cormack et al. 2009). The published 60 flattens the top of both lists; 20 lets
# a passage ranked first by one list count more, and raised SciFact's nDCG@10 on the tuned half (odd query ids,
# 0.7095 → 0.7160) and the other (0.7218 → 0.7279) alike. Weighting the lists or the title field did not
# (benchmarks/fusion_sweep.py, benchmarks/README.md).
RRF_K = 20
# Sentinels that ts_headline wraps matches in; replaced by <mark> after the text is HTML-escaped.
MARK_START = "\x02"
MARK_END = "\x03"

_CHUNK_FILTERS = {
    "kbs": "c.kb_id = ANY(:kb_ids)",
    "document": "c.document_id = :document_id",
}
_DOCUMENT_FILTERS = {
    "file_types": "d.file_type = ANY(:file_types)",
    "path_prefix": "starts_with(d.source_path, :path_prefix)",
    "modified_after": "coalesce(d.modified_at, d.created_at) >= :modified_after",
    "modified_before": "coalesce(d.modified_at, d.created_at) < :modified_before",
    "file_globs": "d.source_path ~ ANY(:file_globs)",
}


@dataclass(frozen=True, slots=True)
class SqlFilters:
    """Filter values as bind parameters; None or empty means no such filter."""

    kb_ids: list[uuid.UUID]
    file_types: list[str] | None = None
    path_prefix: str | None = None
    modified_after: object = None
    modified_before: object = None
    file_globs: list[str] | None = None
    required: list[str] | None = None
    excluded: list[str] | None = None
    document_id: uuid.UUID | None = None

    def where(self) -> tuple[str, dict[str, object]]:
        params: dict[str, object] = {"kb_ids": self.kb_ids}
        clauses = [_CHUNK_FILTERS["kbs"]]
        if self.document_id is not None:
            params["document_id"] = self.document_id
            clauses.append(_CHUNK_FILTERS["document"])
        doc_clauses = []
        for name, fragment in _DOCUMENT_FILTERS.items():
            value = getattr(self, name)
            if value:
                params[name] = value
                doc_clauses.append(fragment)
        if doc_clauses:
            clauses.append("c.document_id IN (SELECT d.id FROM documents d WHERE " + " AND ".join(doc_clauses) + ")")
        for i, pattern in enumerate(self.required or []):
            params[f"req{i}"] = pattern
            clauses.append(f"c.text ~* :req{i}")
        for i, pattern in enumerate(self.excluded or []):
            params[f"exc{i}"] = pattern
            clauses.append(f"c.text !~* :exc{i}")
        return " AND ".join(clauses), params


_VECTOR_CTE = """
vec AS (
  SELECT id, row_number() OVER (ORDER BY dist) AS rank, 1 - dist AS score FROM (
    SELECT c.id, c.embedding <=> CAST(:qvec AS vector) AS dist
    FROM chunks c WHERE {where}
    ORDER BY c.embedding <=> CAST(:qvec AS vector) LIMIT :k
  ) v
)"""

# Words are OR-ed for ranking, as BM25 does: natural questions rarely contain every word of the passage
# they want. Requiring a word is what `+"word"` is for. Quoted phrases keep their <-> inside.
_QUERY_CTE = """
q AS (SELECT CASE WHEN :any_word THEN replace(websearch_to_tsquery('english', :qtext)::text, ' & ', ' | ')::tsquery
                  ELSE websearch_to_tsquery('english', :qtext) END AS query)"""

# BM25 (k1 = 1.2, b = 0.75) from the lexeme statistics the chunk triggers keep per KB, summed over the KBs searched
# (and over no other: another tenant's documents must not move these scores). The KB list is joined rather than
# tested with = ANY: over hundreds of KBs a linear ANY filter on every (lexeme, KB) row cost 40 ms, the join 4 ms.
# Then two steps that bound the work on large corpora. Seeds: chunks holding one of the query's rarest distinctive
# words (in at most 2 % of chunks; all words when none is), each scored by the IDF of the seed words it holds.
# Reading a word's posting list from the GIN index needs no recheck, so no chunk's tsvector is decompressed here.
# Then full BM25, every query word counting with its IDF and its frequency, for the best RERANK_DEPTH seeds only
# (unnesting a tsvector is the expensive part: about 0.1 ms a chunk). A chunk's lexemes are cut to the query's
# before the join to `terms`, so that join hashes a few rows whichever side the planner picks.
MATCH_TERMS = 5
RERANK_DEPTH = 100
_KEYWORD_CTE = """
corpus AS (
  SELECT greatest(lexemes::float8 / greatest(chunks, 1), 1) AS avg_len, chunks FROM (
    SELECT coalesce(sum(chunks), 0)::bigint AS chunks, coalesce(sum(lexemes), 0)::bigint AS lexemes
    FROM kb_chunk_stats WHERE kb_id = ANY(:kb_ids)
  ) s
),
terms AS (
  SELECT s.lexeme, quote_literal(s.lexeme)::tsquery AS query, s.df,
         ln(1 + (corpus.chunks - s.df + 0.5) / (s.df + 0.5)) AS idf
  FROM (
    SELECT s.lexeme, sum(s.df)::bigint AS df
    FROM kb_lexeme_stats s JOIN unnest(CAST(:kb_ids AS uuid[])) k(kb_id) ON k.kb_id = s.kb_id
    WHERE s.lexeme = ANY(tsvector_to_array(to_tsvector('english', :qtext)))
    GROUP BY s.lexeme
  ) s, corpus
),
words AS (SELECT array_agg(lexeme) AS lexemes FROM terms),
rare AS (
  SELECT t.* FROM terms t, corpus WHERE t.df <= greatest(50, 0.02 * corpus.chunks) ORDER BY t.df LIMIT :match_terms
),
seed_terms AS (SELECT * FROM rare UNION ALL SELECT * FROM terms WHERE NOT EXISTS (SELECT 1 FROM rare)),
seeds AS (
  SELECT c.id FROM seed_terms s CROSS JOIN LATERAL (SELECT c.id FROM chunks c WHERE c.tsv @@ s.query AND {where}) c
  GROUP BY c.id ORDER BY sum(s.idf) DESC, c.id LIMIT :rerank_depth
),
kw AS (
  SELECT id, row_number() OVER (ORDER BY score DESC, id) AS rank, score FROM (
    SELECT c.id, (
      SELECT sum(t.idf * (u.tf * 2.2) / (u.tf + 1.2 * (0.25 + 0.75 * length(c.tsv) / corpus.avg_len)))
      FROM (SELECT x.lexeme, coalesce(array_length(x.positions, 1), 1) AS tf FROM unnest(c.tsv) x
            WHERE x.lexeme = ANY(words.lexemes)) u
      JOIN terms t ON t.lexeme = u.lexeme
    ) AS score
    FROM chunks c, corpus, words WHERE c.id IN (SELECT id FROM seeds)
    ORDER BY score DESC, c.id LIMIT :k
  ) t
)"""

# Every candidate with its fused score, its cosine similarity (when the vector list found it) and whether the
# keyword list found it (it holds one of the query's words). A candidate is relevant when it holds a query word
# or its similarity reaches :min_similarity: a query like "xyzzy qwertyuiop" then finds nothing rather than
# the least unrelated passages. The page is cut from the relevant candidates, best first, ties by id, so the
# same query, filters and limit always give the same order and pages neither repeat nor skip a result.
_POOL = {
    "hybrid": """
pool AS (
  SELECT id, sum(1.0 / (:rrf_k + rank)) AS score, max(sim) AS sim, bool_or(kw) AS kw
  FROM (SELECT id, rank, score AS sim, false AS kw FROM vec UNION ALL SELECT id, rank, NULL, true FROM kw) r
  GROUP BY id
)""",
    "vector": "pool AS (SELECT id, score, score AS sim, false AS kw FROM vec)",
    "keyword": "pool AS (SELECT id, score, CAST(NULL AS float8) AS sim, true AS kw FROM kw)",
}
_FUSED = """,
relevant AS (SELECT id, score FROM pool WHERE kw OR sim >= :min_similarity),
fused AS (SELECT id, score FROM relevant ORDER BY score DESC, id LIMIT :limit OFFSET :offset)"""

# One row even when the page is empty, carrying how many candidates there were and how many were relevant.
_SELECT = """
SELECT (SELECT count(*) FROM pool) AS pooled, (SELECT count(*) FROM relevant) AS relevant,
       c.id AS chunk_id, c.document_id, c.kb_id, kb.name AS kb_name, d.title, d.source_path, c.heading,
       c.location, c.text, f.score, {snippet} AS snippet
FROM (SELECT 1) one
LEFT JOIN fused f ON true
LEFT JOIN chunks c ON c.id = f.id
LEFT JOIN documents d ON d.id = c.document_id
LEFT JOIN knowledge_bases kb ON kb.id = c.kb_id
ORDER BY f.score DESC, c.id"""

# The whole passage with every match marked: search/snippets.py cuts the snippet from it at sentence boundaries
# (ts_headline's own fragments end after a count of words, often halfway through the sentence that matched).
_HEADLINE = "ts_headline('english', c.text, (SELECT query FROM q), 'StartSel=\x02, StopSel=\x03, HighlightAll=true')"
_PLAIN_SNIPPET = "c.text"


# The keyword ranking found by `keyword_sql`, handed back as arrays: its rank is its place in them.
_RANKED_KEYWORDS = """
kw AS (
  SELECT k.id, k.rank, k.score
  FROM unnest(CAST(:kw_ids AS bigint[]), CAST(:kw_scores AS float8[])) WITH ORDINALITY AS k(id, score, rank)
)"""


def keyword_sql(where: str) -> str:
    """The keyword half alone: it runs while the query embedding is still being computed."""
    return "WITH " + _KEYWORD_CTE.format(where=where) + "\nSELECT id, score FROM kw ORDER BY rank"


def search_sql(mode: Mode, where: str) -> str:
    ctes = [_QUERY_CTE]
    if mode in ("hybrid", "vector"):
        ctes.append(_VECTOR_CTE.format(where=where))
    if mode in ("hybrid", "keyword"):
        ctes.append(_RANKED_KEYWORDS)
    ctes.append(_POOL[mode])
    snippet = _HEADLINE if mode != "vector" else _PLAIN_SNIPPET
    return "WITH " + ",".join(ctes) + _FUSED + _SELECT.format(snippet=snippet)


@dataclass(frozen=True, slots=True)
class Found:
    """A page of result rows, how many candidates the lists gave, and how many of them were relevant."""

    rows: list[sa.Row[tuple[object, ...]]]
    pooled: int
    relevant: int


async def search(
    conn: AsyncConnection,
    *,
    mode: Mode,
    filters: SqlFilters,
    query_text: str,
    query_vector: Awaitable[str | None],
    limit: int,
    candidates: int,
    ef_search: int,
    exact: bool = False,
    any_word: bool = True,
    offset: int = 0,
    min_similarity: float = -1.0,
) -> Found:
    """Run one search inside the caller's transaction (the planner settings below are local to it).

    The keyword half runs first, on its own, while the caller's query embedding is still being computed; then
    `query_vector` is awaited and one statement runs the vector half, fuses both and makes the snippets.
    """
    where, params = filters.where()
    # The statement is prepared once it repeats, and a cached generic plan keeps the index scans it was built
    # with whatever enable_indexscan says now: an exact scan therefore asks for a plan of its own.
    await conn.execute(
        sa.text(
            "SELECT set_config('hnsw.ef_search', :ef, true), set_config('enable_indexscan', :indexscan, true), "
            "set_config('plan_cache_mode', CASE WHEN :exact THEN 'force_custom_plan' "
            "ELSE current_setting('plan_cache_mode') END, true)"
        ),
        {"ef": str(max(ef_search, candidates)), "indexscan": "off" if exact else "on", "exact": exact},
    )
    params |= {"qtext": query_text, "k": candidates}
    ranked: list[tuple[int, float]] = []
    if mode in ("hybrid", "keyword"):
        keyword_params = params | {
            "match_terms": MATCH_TERMS,
            "rerank_depth": max(RERANK_DEPTH, candidates),
        }
        keyword_rows = await conn.execute(sa.text(keyword_sql(where)), keyword_params)
        ranked = [(int(r.id), float(r.score or 0.0)) for r in keyword_rows]
    params |= {
        "qvec": await query_vector,
        "kw_ids": [i for i, _ in ranked],
        "kw_scores": [score for _, score in ranked],
        "limit": limit,
        "offset": offset,
        "min_similarity": min_similarity,
        "rrf_k": RRF_K,
        "any_word": any_word,
    }
    rows = list(await conn.execute(sa.text(search_sql(mode, where)), params))
    return Found(
        rows=[r for r in rows if r.chunk_id is not None], pooled=int(rows[0].pooled), relevant=int(rows[0].relevant)
    )


async def searchable_chunks(conn: AsyncConnection, *, kb_ids: list[uuid.UUID]) -> tuple[int, int]:
    """Chunks in these KBs, and in all KBs: how much of the HNSW graph a filtered search can use."""
    row = (
        await conn.execute(
            sa.text(
                "SELECT (SELECT coalesce(sum(chunk_count), 0) FROM documents WHERE kb_id = ANY(:kb_ids)) AS mine, "
                "(SELECT coalesce(sum(chunks), 0) FROM kb_chunk_stats) AS total"
            ),
            {"kb_ids": kb_ids},
        )
    ).one()
    return int(row.mine), int(row.total)
