"""Chat over HTTP against an instant LLM double: what Memex adds to a search, and extractive answers on SciFact.

    python benchmarks/chat.py [--chunks 10000] [--requests 30]
    python benchmarks/chat.py --quality [--dataset DIR] [--max-docs N] [--limit-queries N] [--keep-db DIR]

Speed: a KB of synthetic chunks (see search_latency.py) is served by two `memex serve --no-worker` processes on
the same database, one with the OpenAI double of tests/doubles as its model, one with no model (extractive
answers). Requests go one at a time, interleaved, each with its own SciFact question, and every figure sits
beside its floor from the same run: `GET /api/search` p50.

Quality (`--quality`): SciFact indexed through the ingestion pipeline (as retrieval.py does, and sharing its
`--keep-db` index), then each test claim is asked without a model (`chat.service.ask`): how often the first
cited sentence comes from a relevant abstract, beside how often hybrid search's top hit is relevant.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from harness import SCIFACT, bench_runtime, emit, log, percentile, read_corpus, scratch_database
from search_latency import corpus_material
from served import free_port, server_env, synthetic_store, wait_ready

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the LLM doubles live in tests/doubles
from tests.doubles.openai_server import OpenAIDouble
from tests.doubles.script import reply

GOALS = {"ttft_added": 1.3, "grounding": 0.5, "extractive": 2.0}  # times the search p50
ANSWER_SENTENCES = 5
UNLIMITED = "1000000/minute"


@dataclass
class Samples:
    """Latencies (ms) of one kind of request, and the server's own `timings` of each answer."""

    ms: list[float] = field(default_factory=list)
    timings: list[dict[str, Any]] = field(default_factory=list)
    errors: int = 0

    def p50(self) -> float:
        return round(percentile(self.ms, 50), 2)

    def summary(self) -> dict[str, object]:
        out: dict[str, object] = {
            "p50_ms": self.p50(),
            "p95_ms": round(percentile(self.ms, 95), 2),
            "n": len(self.ms),
            "errors": self.errors,
        }
        if self.timings:
            out["server_timings_p50_ms"] = {
                k: round(statistics.median(t[k] for t in self.timings if t.get(k) is not None), 2)
                for k in self.timings[0]
                if any(t.get(k) is not None for t in self.timings)
            }
        return out


class Server:
    """A `memex serve --no-worker` subprocess, its log in a file (a pipe nobody reads would fill and stall it)."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        with open(log_path, "wb") as log_file:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "memex", "serve", "--no-worker", "--port", str(self.port)],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=log_file,
            )

    async def ready(self) -> None:
        try:
            await wait_ready(self.url, self.proc)
        except SystemExit:
            log(f"memex serve's log: {self.log_path.read_text(errors='replace')[-2000:]}")
            raise

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


async def search_once(client: httpx.AsyncClient, question: str, samples: Samples) -> list[dict[str, Any]]:
    started = time.perf_counter()
    response = await client.get("/api/search", params={"q": question, "limit": 10})
    if response.status_code != 200:
        samples.errors += 1
        return []
    samples.ms.append((time.perf_counter() - started) * 1000)
    results: list[dict[str, Any]] = response.json()["results"]
    return results


async def stream_once(client: httpx.AsyncClient, question: str) -> tuple[float | None, dict[str, Any] | None]:
    """(ms until the first token event, the done event's data) of one streamed answer."""
    started = time.perf_counter()
    first: float | None = None
    done: dict[str, Any] | None = None
    event = ""
    async with client.stream("POST", "/api/chat", json={"message": question}) as response:
        if response.status_code != 200:
            return None, None
        async for line in response.aiter_lines():
            if line.startswith("event:"):
                event = line.removeprefix("event:").strip()
                if event == "token" and first is None:
                    first = (time.perf_counter() - started) * 1000
            elif line.startswith("data:") and event == "done":
                done = json.loads(line.removeprefix("data:"))
            elif line.startswith("data:") and event == "error":
                return None, None
    return first, done


async def whole_once(client: httpx.AsyncClient, question: str, samples: Samples) -> dict[str, Any] | None:
    started = time.perf_counter()
    response = await client.post("/api/chat", json={"message": question, "stream": False})
    if response.status_code != 200:
        samples.errors += 1
        return None
    samples.ms.append((time.perf_counter() - started) * 1000)
    body: dict[str, Any] = response.json()
    samples.timings.append(body["timings"])
    return body


def cited_answer(results: list[dict[str, Any]]) -> str:
    """Five sentences, each restating the first sentence of one of the top results and citing it.

    Each is reworded a little, as a model would: a sentence quoted word for word is supported without a model,
    which would make the check look cheaper than it is.
    """
    sentences = []
    for n, r in enumerate(results[:ANSWER_SENTENCES], start=1):
        first = r["text"].split(". ")[0].strip().rstrip(".")
        sentences.append(f"The sources report that {first[:1].lower()}{first[1:]} [{n}].")
    return " ".join(sentences)


async def speed(args: argparse.Namespace) -> dict[str, object]:
    sentences, words = corpus_material(args.corpus, min(1000, max(200, args.chunks // 20)))
    questions = list(dict.fromkeys(r["text"] for r in read_corpus(args.queries_file)))
    per_round = 5
    needed = (args.requests + args.warmup) * per_round
    if needed > len(questions):
        raise SystemExit(f"{needed} distinct questions are needed; {args.queries_file} has {len(questions)}")
    double = OpenAIDouble().start()
    with scratch_database() as scratch:
        env = server_env(
            scratch,
            MEMEX_QUERY_CACHE_SIZE=str(args.query_cache_size),
            MEMEX_RATE_LIMIT_SEARCH=UNLIMITED,
            MEMEX_RATE_LIMIT_CHAT=UNLIMITED,
        )
        key = await synthetic_store(
            scratch, env, sentences=sentences, words=words, chunks=args.chunks, kb_prefix="chat"
        )

        with_model = Server(
            env
            | {
                "MEMEX_LLM_PROVIDER": "openai",
                "MEMEX_LLM_BASE_URL": double.base_url,
                "MEMEX_LLM_MODEL": "bench-model",
                "MEMEX_LLM_API_KEY": "sk-bench",
            },
            scratch.work_dir / "serve-model.log",
        )
        extractive = Server(env | {"MEMEX_LLM_PROVIDER": "none"}, scratch.work_dir / "serve-extractive.log")
        headers = {"Authorization": f"Bearer {key}"}
        try:
            await with_model.ready()
            await extractive.ready()
            async with (
                httpx.AsyncClient(base_url=with_model.url, headers=headers, timeout=120) as llm_client,
                httpx.AsyncClient(base_url=extractive.url, headers=headers, timeout=120) as plain_client,
            ):
                log("servers ready")
                search, ttft, grounding_instant, grounding_paced, whole = (Samples() for _ in range(5))
                paced = {"first_token_delay": args.first_token_ms / 1000, "token_delay": args.token_ms / 1000}
                rounds = args.warmup + args.requests
                for i in range(rounds):
                    measured = i >= args.warmup
                    q = questions[i * per_round : (i + 1) * per_round]
                    s = search if measured else Samples()
                    # 1. The floor: a plain hybrid search, through the same API and server.
                    await search_once(llm_client, q[0], s)
                    # 2. Time to the first token, the double answering at once.
                    first, done = await stream_once(llm_client, q[1])
                    if measured:
                        if first is None or done is None:
                            ttft.errors += 1
                        else:
                            ttft.ms.append(first)
                            ttft.timings.append(done["timings"])
                    # 3. A five-sentence cited answer: the grounding check's time after the model's last token,
                    # with the model answering at once, then at a model's pace (passages are prepared meanwhile).
                    for samples, options, question in (
                        (grounding_instant, {}, q[2]),
                        (grounding_paced, paced, q[3]),
                    ):
                        hits = await search_once(plain_client, question, Samples())
                        double.push(reply(cited_answer(hits), **options))
                        _, done = await stream_once(llm_client, question)
                        if measured:
                            if done is None:
                                samples.errors += 1
                            else:
                                samples.ms.append(done["timings"]["grounding_ms"])
                                samples.timings.append(done["timings"])
                    # 4. An extractive answer, end to end, from the server with no model.
                    await whole_once(plain_client, q[4], whole if measured else Samples())
                    if measured and (i - args.warmup + 1) % 10 == 0:
                        log(
                            f"{i - args.warmup + 1}/{args.requests}: search p50 {search.p50()} ms, ttft "
                            f"{ttft.p50()} ms, grounding {grounding_paced.p50()} ms (instant model "
                            f"{grounding_instant.p50()} ms), extractive {whole.p50()} ms"
                        )
        finally:
            with_model.stop()
            extractive.stop()
            double.stop()

    floor = search.p50()
    figures = {
        "ttft_added": (ttft.p50(), GOALS["ttft_added"]),
        "grounding": (grounding_paced.p50(), GOALS["grounding"]),
        "grounding_instant_model": (grounding_instant.p50(), None),
        "extractive": (whole.p50(), GOALS["extractive"]),
    }
    ratios: dict[str, object] = {}
    for name, (value, goal) in figures.items():
        ratio = round(value / floor, 3) if floor else None
        ratios[name] = {"p50_ms": value, "ratio_to_search": ratio, "goal_ratio": goal}
        if goal is not None:
            ratios[name]["met"] = ratio is not None and ratio <= goal  # type: ignore[index]
    return {
        "chunks": args.chunks,
        "synthetic": True,
        "requests": args.requests,
        "distinct_questions": True,
        "query_cache_size": args.query_cache_size,
        "paced_model": {"first_token_ms": args.first_token_ms, "token_ms": args.token_ms},
        "search_p50_ms": floor,
        "figures": ratios,
        "search": search.summary(),
        "ttft": ttft.summary(),
        "grounding": grounding_paced.summary(),
        "grounding_instant_model": grounding_instant.summary(),
        "extractive": whole.summary(),
    }


async def quality(args: argparse.Namespace) -> dict[str, object]:
    from retrieval import (
        cached_index,
        index_corpus,
        read_qrels,
        read_queries,
        remember_index,
        select_docs,
        signature,
        source_path,
    )

    from memex.chat import service as chat
    from memex.chat.models import ChatRequest
    from memex.kbs.access import Actor
    from memex.logging import configure_logging
    from memex.search import service as search
    from memex.search.models import SearchFilters, SearchRequest

    dataset = args.dataset.absolute()
    name = dataset.name
    corpus = read_corpus(dataset / "corpus.jsonl")
    all_queries = read_queries(dataset)
    qrels = read_qrels(dataset, "test")
    qids = [q for q in qrels if q in all_queries][: args.limit_queries]
    qrels = {q: qrels[q] for q in qids}
    docs = select_docs(corpus, qrels, args.max_docs)
    args.doc_format = "txt"
    log(f"{name}: {len(docs)} of {len(corpus)} documents, {len(qids)} test queries")
    counts = {"search_top_hit": 0, "first_cited": 0, "any_cited": 0, "first_cited_from_passage_1": 0}
    answered = 0
    ask_ms: list[float] = []
    with scratch_database(keep=args.keep_db) as scratch:
        runtime = await bench_runtime(scratch, llm_provider="none", log_level="WARNING")
        configure_logging(runtime.settings)  # a line per search and answer would bury the result on stdout
        try:
            key = f"bench:retrieval:{signature(args, runtime, docs)}"
            cached = await cached_index(runtime, key)
            if cached is not None:
                kb_id, _ = cached
                log("reusing the KB indexed by an earlier run")
            else:
                log(f"indexing {len(docs)} documents through the ingestion pipeline")
                kb_id, seconds = await index_corpus(
                    runtime, kb_name=f"bench:{name}:{key[-16:]}", dataset_name=name, docs=docs, doc_format="txt"
                )
                log(f"indexed in {seconds:.1f} s")
                if args.keep_db is not None:
                    await remember_index(runtime, key, kb_id=kb_id, seconds=seconds)
            by_path = {source_path(name, row["_id"], "txt"): row["_id"] for row in docs}
            actor = Actor.system()
            for n, qid in enumerate(qids, start=1):
                relevant = {d for d, grade in qrels[qid].items() if grade > 0}
                question = all_queries[qid]
                found = await search.search(
                    runtime, actor, SearchRequest(query=question, limit=10, filters=SearchFilters(kb_ids=(kb_id,)))
                )
                counts["search_top_hit"] += bool(found) and by_path.get(found[0].path) in relevant
                started = time.perf_counter()
                answer = await chat.ask(runtime, actor, ChatRequest(message=question, kb_ids=(kb_id,)))
                ask_ms.append((time.perf_counter() - started) * 1000)
                paths = {c["n"]: c["path"] for c in answer.citations}
                cited = [s["citations"][0] for s in answer.sentences if s["citations"]]
                if cited:
                    answered += 1
                    counts["first_cited"] += by_path.get(paths.get(cited[0], "")) in relevant
                    counts["first_cited_from_passage_1"] += cited[0] == 1
                    counts["any_cited"] += any(by_path.get(paths.get(c, "")) in relevant for c in cited)
                if n % 50 == 0:
                    log(f"{n}/{len(qids)}: {counts}")
        finally:
            await runtime.close()
    share = {k: round(v / len(qids), 4) for k, v in counts.items()}
    return {
        "dataset": name,
        "docs": len(docs),
        "queries": len(qids),
        "answered": answered,
        "search_top_hit_relevant": share["search_top_hit"],
        "extractive_first_cited_relevant": share["first_cited"],
        "extractive_any_cited_relevant": share["any_cited"],
        "extractive_first_cited_is_passage_1": share["first_cited_from_passage_1"],
        "goal_met": share["first_cited"] >= share["search_top_hit"],
        "ask_p50_ms": round(percentile(ask_ms, 50), 2),
        "reused_index": cached is not None,
    }


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quality", action="store_true", help="extractive answers on SciFact instead of speed")
    p.add_argument("--chunks", type=int, default=10_000, help="synthetic chunks in the KB (default 10000)")
    p.add_argument("--requests", type=int, default=30, help="measured rounds, one request of each kind (default 30)")
    p.add_argument("--warmup", type=int, default=3, help="rounds before measuring (default 3)")
    p.add_argument("--query-cache-size", type=int, default=1024, help="the servers' MEMEX_QUERY_CACHE_SIZE")
    p.add_argument("--first-token-ms", type=float, default=300, help="the paced model's wait before its first word")
    p.add_argument("--token-ms", type=float, default=15, help="the paced model's wait between words")
    p.add_argument("--corpus", type=Path, default=SCIFACT / "corpus.jsonl")
    p.add_argument("--queries-file", type=Path, default=SCIFACT / "queries.jsonl")
    p.add_argument("--dataset", type=Path, default=SCIFACT, help="--quality: a BEIR dataset folder")
    p.add_argument("--max-docs", type=int, default=None, help="--quality: index a subset of N documents")
    p.add_argument("--limit-queries", type=int, default=None, help="--quality: only the first N judged queries")
    p.add_argument("--keep-db", type=Path, default=None, help="--quality: keep and reuse the index (see retrieval.py)")
    return p.parse_args(argv)


if __name__ == "__main__":
    arguments = parse_args(sys.argv[1:])
    emit(asyncio.run(quality(arguments) if arguments.quality else speed(arguments)))
