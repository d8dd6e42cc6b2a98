"""The grounding check on SciFact: how often a claim citing an abstract is flagged as unsupported.

    python benchmarks/grounding.py [--dataset DIR] [--limit N] [--threshold T] [--weight W] [--sweep]

Each judged test query is a claim. It is paired with each of its relevant abstracts, with one random abstract,
and with a hard negative: the best-ranked non-relevant abstract by BM25 over the whole corpus. The "answer" is
the claim as one sentence citing [1], the passage [1] is the abstract, and the check is the one chat runs
(`memex.chat.grounding.check` with the local embedder). A pair is flagged when a cited sentence comes out
unsupported. Rates are reported for the odd query ids (the half the constants were tuned on), the even ones
(held out) and all of them.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
import uuid
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from harness import SCIFACT, emit, log, percentile, read_corpus
from retrieval import read_qrels

from memex.chat import grounding
from memex.chat.models import Passage
from memex.chat.sentences import split_sentences, words
from memex.embeddings.local import LocalEmbedder
from memex.settings import Settings

KINDS = ("relevant", "random", "hard")
GOAL_RANDOM_FLAGGED = 0.95
GOAL_RELEVANT_FLAGGED = 0.10
SWEEP_WEIGHTS = [round(w * 0.1, 1) for w in range(11)]
SWEEP_THRESHOLDS = [round(0.2 + t * 0.01, 2) for t in range(41)]
_BM25_K1, _BM25_B = 1.2, 0.75


@dataclass(frozen=True)
class Pair:
    kind: str
    query_id: str
    claim: str
    doc_id: str
    label: str  # SciFact's verdict for a relevant abstract: support, contradict or unlabelled; "" otherwise

    @property
    def tuned(self) -> bool:
        """Whether the pair is in the half the constants were tuned on (odd query ids)."""
        return (int(self.query_id) if self.query_id.isdigit() else zlib.crc32(self.query_id.encode())) % 2 == 1


class Bm25:
    """Plain BM25 over the corpus (title and text), for hard negatives."""

    def __init__(self, corpus: list[dict[str, str]]) -> None:
        self.ids = [row["_id"] for row in corpus]
        self.terms = [Counter(_terms(f"{row['title']} {row['text']}")) for row in corpus]
        self.lengths = [sum(t.values()) for t in self.terms]
        self.average = sum(self.lengths) / max(len(self.lengths), 1)
        df: Counter[str] = Counter()
        for t in self.terms:
            df.update(t.keys())
        n = len(self.ids)
        self.idf = {w: math.log(1 + (n - f + 0.5) / (f + 0.5)) for w, f in df.items()}

    def ranked(self, query: str) -> list[str]:
        wanted = set(_terms(query))
        scores: dict[int, float] = {}
        for i, (terms, length) in enumerate(zip(self.terms, self.lengths, strict=True)):
            score = 0.0
            for w in wanted & terms.keys():
                f = terms[w]
                score += (
                    self.idf[w] * f * (_BM25_K1 + 1) / (f + _BM25_K1 * (1 - _BM25_B + _BM25_B * length / self.average))
                )
            if score:
                scores[i] = score
        return [self.ids[i] for i in sorted(scores, key=scores.__getitem__, reverse=True)]


def _terms(text: str) -> list[str]:
    return [w for w in words(text) if len(w) > 1]


def read_claims(dataset: Path) -> dict[str, tuple[str, dict[str, str]]]:
    """query id → (claim, {corpus id: SciFact label}) from queries.jsonl's metadata, where it has one."""
    out = {}
    with open(dataset / "queries.jsonl", encoding="utf-8") as f:
        for row in map(json.loads, filter(str.strip, f)):
            labels = {doc: str(found[0].get("label", "")).lower() for doc, found in (row.get("metadata") or {}).items()}
            out[str(row["_id"])] = (row["text"], labels)
    return out


def build_pairs(dataset: Path, corpus: list[dict[str, str]], limit: int | None) -> list[Pair]:
    claims = read_claims(dataset)
    qrels = read_qrels(dataset, "test")
    query_ids = sorted(qrels, key=lambda q: (len(q), q))[:limit]
    bm25 = Bm25(corpus)
    rng = random.Random(7)
    pairs = []
    for qid in query_ids:
        claim, labels = claims[qid]
        relevant = {doc for doc, grade in qrels[qid].items() if grade > 0}
        for doc in sorted(relevant):
            pairs.append(Pair("relevant", qid, claim, doc, labels.get(doc) or "unlabelled"))
        while (doc := rng.choice(bm25.ids)) in relevant:
            pass
        pairs.append(Pair("random", qid, claim, doc, ""))
        hard = next(d for d in bm25.ranked(claim) if d not in relevant)
        pairs.append(Pair("hard", qid, claim, hard, ""))
    return pairs


def answer_for(claim: str) -> str:
    """The claim as one sentence citing [1]."""
    return f"{claim.strip().rstrip('.')} [1]."


def passage_for(number: int, doc_id: str, row: dict[str, str]) -> Passage:
    return Passage(
        n=1,
        chunk_id=number,
        document_id=uuid.uuid5(uuid.NAMESPACE_URL, doc_id),
        kb=uuid.UUID(int=0),
        kb_name="scifact",
        title=row["title"],
        path=f"{doc_id}.txt",
        heading="",
        location="",
        text=row["text"],
    )


def rates(flags: list[bool], pairs: list[Pair]) -> dict[str, dict[str, float | int]]:
    """Flag rates by kind, for the tuned half, the held-out half and all pairs."""
    out: dict[str, dict[str, float | int]] = {}
    for half, keep in (("odd_tuned", True), ("even_held_out", False), ("all", None)):
        row: dict[str, float | int] = {}
        for kind in KINDS:
            chosen = [f for f, p in zip(flags, pairs, strict=True) if p.kind == kind and keep in (None, p.tuned)]
            row[kind] = round(sum(chosen) / len(chosen), 4) if chosen else float("nan")
        out[half] = row
    return out


def meets(row: dict[str, float | int]) -> bool:
    return row["random"] >= GOAL_RANDOM_FLAGGED and row["relevant"] <= GOAL_RELEVANT_FLAGGED


def sweep(parts: list[list[grounding.Support]], pairs: list[Pair]) -> list[dict[str, object]]:
    """For each weight, the threshold with the most room on both goals on the tuned half, and its rates."""
    out: list[dict[str, object]] = []
    for weight in SWEEP_WEIGHTS:
        scores = [min(s.score(weight) for s in supports) for supports in parts]
        room_at = {}
        for threshold in SWEEP_THRESHOLDS:
            tuned = rates([score < threshold for score in scores], pairs)["odd_tuned"]
            room_at[threshold] = min(tuned["random"] - GOAL_RANDOM_FLAGGED, GOAL_RELEVANT_FLAGGED - tuned["relevant"])
        feasible = [t for t, room in room_at.items() if room >= 0]
        # The middle of the thresholds that leave the most room: the plateau's edge is where noise tips it over.
        widest = [t for t, room in room_at.items() if room == max(room_at.values())]
        chosen = widest[len(widest) // 2]
        flagged = rates([score < chosen for score in scores], pairs)
        out.append(
            {
                "weight": weight,
                "threshold": chosen,
                "feasible_thresholds": [min(feasible), max(feasible)] if feasible else None,
                "flagged": flagged,
            }
        )
        log(
            f"weight {weight:.1f}: best threshold {chosen:.2f} (feasible on the odd half: {out[-1]['feasible_thresholds']}); "
            + "; ".join(f"{half} {row}" for half, row in flagged.items())
        )
    return out


def main(args: argparse.Namespace) -> dict[str, object]:
    corpus = read_corpus(args.dataset / "corpus.jsonl")
    by_id = {row["_id"]: row for row in corpus}
    log(f"building pairs from {args.dataset.name} ({len(corpus)} abstracts)")
    pairs = build_pairs(args.dataset, corpus, args.limit)
    docs = sorted({p.doc_id for p in pairs})
    log(f"{len(pairs)} pairs over {len(docs)} abstracts: {dict(Counter(p.kind for p in pairs))}")

    embedder = LocalEmbedder.load(Settings().model_cache_dir)
    vectors = grounding.SentenceVectors(embedder, size=len(docs) + 1)
    prepared: dict[str, grounding.PreparedPassage] = {}
    prepare_ms = []
    for i, doc in enumerate(docs):
        started = time.perf_counter()
        prepared[doc] = vectors.prepare([passage_for(i, doc, by_id[doc])])[1]
        prepare_ms.append((time.perf_counter() - started) * 1000)
        if (i + 1) % 200 == 0:
            log(f"prepared {i + 1}/{len(docs)} abstracts")

    threshold = grounding.SUPPORT_THRESHOLD if args.threshold is None else args.threshold
    weight = grounding.SEMANTIC_WEIGHT if args.weight is None else args.weight
    flags, check_ms, scores = [], [], []
    for pair in pairs:
        started = time.perf_counter()
        checked = grounding.check(
            embedder, answer_for(pair.claim), {1: prepared[pair.doc_id]}, threshold=threshold, weight=weight
        )
        check_ms.append((time.perf_counter() - started) * 1000)
        cited = [s for s in checked.sentences if s.citations]
        flags.append(any(s.supported is False for s in cited))
        scores.append(min(s.score or 0.0 for s in cited))
    log(f"checked {len(pairs)} pairs")

    flagged = rates(flags, pairs)
    by_label = {}
    for label in ("support", "contradict", "unlabelled"):
        chosen = [f for f, p in zip(flags, pairs, strict=True) if p.kind == "relevant" and p.label == label]
        by_label[label] = {"pairs": len(chosen), "flagged": round(sum(chosen) / len(chosen), 4) if chosen else None}
    result: dict[str, object] = {
        "dataset": args.dataset.name,
        "queries": len({p.query_id for p in pairs}),
        "pairs": dict(Counter(p.kind for p in pairs)),
        "abstracts": len(docs),
        "semantic_weight": weight,
        "threshold": threshold,
        "hard_negatives": "bm25",
        "flagged": flagged,
        "relevant_flagged_by_label": by_label,
        "goals": {
            "random_flagged_at_least": GOAL_RANDOM_FLAGGED,
            "relevant_flagged_at_most": GOAL_RELEVANT_FLAGGED,
            "met": {half: meets(row) for half, row in flagged.items()},
        },
        "median_score": {
            kind: round(float(np.median([s for s, p in zip(scores, pairs, strict=True) if p.kind == kind])), 4)
            for kind in KINDS
        },
        "check_p50_ms": round(percentile(check_ms, 50), 2),
        "check_p95_ms": round(percentile(check_ms, 95), 2),
        "prepare_p50_ms": round(percentile(prepare_ms, 50), 2),
        "sentences_per_abstract": round(float(np.mean([len(p.sentences) for p in prepared.values()])), 1),
    }
    if args.sweep:
        claims = {
            s.plain
            for p in pairs
            for s in split_sentences(answer_for(p.claim))
            if s.citations  # the sentences the check scores
        }
        ordered = sorted(claims)
        claim_vectors = dict(zip(ordered, embedder.embed_documents(ordered), strict=True))
        parts = [
            [
                grounding.support(claim_vectors[s.plain], s.plain, [prepared[p.doc_id]])[0]
                for s in split_sentences(answer_for(p.claim))
                if s.citations
            ]
            for p in pairs
        ]
        # The sweep rescores from the parts; at the run's own weight it must agree with the check.
        replayed = [min(s.score(weight) for s in supports) < threshold for supports in parts]
        result["sweep_agrees_with_check"] = sum(a == b for a, b in zip(replayed, flags, strict=True)) / len(flags)
        result["sweep"] = sweep(parts, pairs)
    return result


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", type=Path, default=SCIFACT, help="a BEIR dataset folder (default SciFact)")
    p.add_argument("--limit", type=int, default=None, help="only the first N judged test queries")
    p.add_argument("--threshold", type=float, default=None, help="support threshold (default SUPPORT_THRESHOLD)")
    p.add_argument("--weight", type=float, default=None, help="semantic weight (default SEMANTIC_WEIGHT)")
    p.add_argument("--sweep", action="store_true", help="also the rates across weights and thresholds")
    return p.parse_args(argv)


if __name__ == "__main__":
    emit(main(parse_args(sys.argv[1:])))
