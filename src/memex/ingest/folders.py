"""Keeping a knowledge base in step with folders on disk: add, update, rename, remove."""

from __future__ import annotations

import asyncio
import functools
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from memex.documents import store as documents
from memex.documents.models import StoredFile
from memex.ingest import pipeline
from memex.ingest.chunking import Chunker
from memex.ingest.scan import Failure, ScannedFile, read_file, scan, sha256_file
from memex.runtime import Runtime


@dataclass
class IndexSummary:
    """The outcome of one `memex index` run (DESIGN.md §5), plus a few extra counts."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    renamed: int = 0
    skipped: int = 0
    chunks: int = 0
    seconds: float = 0.0
    failed: list[Failure] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "removed": self.removed,
            "renamed": self.renamed,
            "skipped": self.skipped,
            "chunks": self.chunks,
            "seconds": round(self.seconds, 3),
            "failed": [{"path": f.path, "reason": f.reason} for f in self.failed],
        }


@dataclass
class _Plan:
    work: list[pipeline.WorkItem] = field(default_factory=list)
    renames: list[tuple[StoredFile, ScannedFile]] = field(default_factory=list)
    removals: list[StoredFile] = field(default_factory=list)
    unchanged: int = 0


def chunker_for(runtime: Runtime) -> Chunker:
    from memex.embeddings.model_files import tokenizer

    return Chunker(
        tokenizer(), max_tokens=runtime.settings.chunk_tokens, overlap_tokens=runtime.settings.chunk_overlap_tokens
    )


class ProgressSink:
    """Receives progress; the CLI draws a bar with it. Methods are no-ops by default."""

    def planned(self, total: int) -> None: ...

    def advance(self, outcome: str, path: str) -> None: ...


async def index_paths(
    runtime: Runtime, *, kb_id: uuid.UUID, paths: Sequence[Path], progress: ProgressSink | None = None
) -> IndexSummary:
    """Index files and folders into a KB incrementally; failures are collected, never raised."""
    started = time.perf_counter()
    progress = progress or ProgressSink()
    summary = IndexSummary()
    outcomes = pipeline.Outcomes()
    plans: list[_Plan] = []
    for root in paths:
        scanned = await asyncio.to_thread(scan, root)
        summary.skipped += scanned.skipped
        outcomes.failures.extend(scanned.failures)
        async with runtime.engine.connect() as conn:
            stored = await documents.files_under(conn, kb_id=kb_id, prefix=str(root.expanduser().absolute()))
        protected = [f.path for f in scanned.failures]
        plans.append(await asyncio.to_thread(_plan, scanned.files, stored, outcomes.failures, protected))
    work = [item for plan in plans for item in plan.work]
    progress.planned(len(work) + sum(p.unchanged + len(p.renames) + len(p.removals) for p in plans))

    async with runtime.engine.begin() as conn:
        for plan in plans:
            for old, new in plan.renames:
                await documents.rename(
                    conn, document_id=old.id, source_path=new.source_path, modified_at=new.modified_at
                )
                progress.advance("renamed", new.source_path)
            await documents.delete(conn, document_ids=[f.id for f in plan.removals])
            for f in plan.removals:
                progress.advance("removed", f.source_path)
    for plan in plans:
        summary.unchanged += plan.unchanged
        summary.renamed += len(plan.renames)
        summary.removed += len(plan.removals)
        for _ in range(plan.unchanged):
            progress.advance("unchanged", "")

    if work:
        await pipeline.run(runtime, kb_id=kb_id, items=work, outcomes=outcomes, on_progress=progress.advance)
    summary.added = len(outcomes.done.get("added", []))
    summary.updated = len(outcomes.done.get("updated", []))
    summary.chunks = outcomes.chunks
    summary.failed = outcomes.failures
    summary.seconds = time.perf_counter() - started
    return summary


def _plan(files: list[ScannedFile], stored: list[StoredFile], failures: list[Failure], protected: list[str]) -> _Plan:
    """Decide each file's fate by comparing sha256 with what the KB holds (runs in a thread: it hashes)."""
    plan = _Plan()
    by_path = {f.source_path: f for f in stored}
    on_disk = {f.source_path for f in files}
    # Stored documents whose file is gone may have moved: a new path with the same content is a rename.
    vanished: dict[str, list[StoredFile]] = defaultdict(list)
    for f in stored:
        # Under a folder we could not read, absence proves nothing: leave those documents alone.
        if any(f.source_path == p or f.source_path.startswith(p.rstrip("/") + "/") for p in protected):
            continue
        if f.source_path not in on_disk:
            vanished[f.sha256].append(f)
    for file in files:
        try:
            sha = sha256_file(file.path)
        except FileNotFoundError:
            failures.append(Failure(path=file.source_path, reason="file disappeared during the scan"))
            # Gone before we could read it: keep whatever was indexed, as the file may come back.
            by_path.pop(file.source_path, None)
            continue
        except OSError as exc:
            failures.append(Failure(path=file.source_path, reason=f"cannot read: {exc.strerror or exc}"))
            by_path.pop(file.source_path, None)
            continue
        existing = by_path.get(file.source_path)
        if existing is not None and existing.sha256 == sha and existing.status == "indexed":
            plan.unchanged += 1
            continue
        if existing is None and vanished.get(sha):
            plan.renames.append((vanished[sha].pop(), file))
            continue
        plan.work.append(
            pipeline.WorkItem(
                source_path=file.source_path,
                name=file.path.name,
                load=functools.partial(read_file, file.path),
                modified_at=file.modified_at,
                outcome="added" if existing is None else "updated",
            )
        )
    plan.removals = [f for group in vanished.values() for f in group]
    return plan
