"""The CLI's remote mode: an HTTP client of a Memex server (`--url`/MEMEX_URL, key from MEMEX_API_KEY), and the
folder sync `memex index --url` runs through it.

HTTP and transport errors become Memex errors here, at the boundary, so commands report them as they do local ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from memex import errors

if TYPE_CHECKING:
    from memex.ingest.folders import IndexSummary, ProgressSink
    from memex.ingest.scan import ScannedFile

# The ingestion modules are imported where the folder sync uses them: a search through a server needs only the
# client, and they take longer to import than the search takes to answer.

PAGE = 1000
UPLOADS_AT_ONCE = 4
POLL_SECONDS = 1.0
POLL_WINDOW = 25
# Give up waiting when no upload has finished for this long: the server has no worker running.
STALL_SECONDS = 600.0
CHAT_TIMEOUT_SECONDS = 600.0
RATE_LIMIT_RETRIES = 5
MAX_RATE_LIMIT_WAIT = 60.0

_ERRORS: dict[int, type[errors.MemexError]] = {
    400: errors.InvalidInput,
    401: errors.AuthenticationRequired,
    403: errors.PermissionDenied,
    404: errors.NotFound,
    409: errors.Conflict,
    413: errors.FileTooLarge,
    415: errors.UnsupportedFileType,
    422: errors.InvalidInput,
    429: errors.RateLimited,
}
# Errors that would fail every other file too: stop at once rather than report each file.
_FATAL = (errors.AuthenticationRequired, errors.PermissionDenied, errors.ServiceUnavailable, errors.RateLimited)


def _retry_after(response: httpx.Response) -> float | None:
    if response.status_code != 429:
        return None
    try:
        return max(0.0, float(response.headers.get("Retry-After", "")))
    except ValueError:
        return None


def _error(response: httpx.Response) -> errors.MemexError:
    try:
        detail = str(response.json().get("detail") or response.reason_phrase)
    except ValueError:
        detail = response.text[:200] or response.reason_phrase
    if response.status_code == 401:
        detail = f"{detail} (check MEMEX_API_KEY or --api-key)"
    cls = _ERRORS.get(response.status_code)
    if cls is None:
        return errors.ServiceUnavailable(f"the server answered {response.status_code}: {detail}")
    return cls(detail)


class RemoteClient:
    """The parts of the HTTP API the CLI uses."""

    def __init__(self, url: str, api_key: str | None, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # Loading the certificate store takes longer than a local search; a plain-HTTP URL never uses it (and
        # redirects, which could lead to HTTPS, are not followed).
        tls = self.url.lower().startswith("https:")
        self._http = httpx.AsyncClient(
            base_url=self.url,
            headers=headers,
            timeout=httpx.Timeout(60.0, connect=10.0),
            transport=transport,
            verify=tls,
            follow_redirects=False,
        )

    async def __aenter__(self) -> RemoteClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._http.aclose()

    async def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        for attempt in range(RATE_LIMIT_RETRIES + 1):
            try:
                response = await self._http.request(method, path, **kwargs)
            except httpx.TimeoutException as exc:
                raise errors.ServiceUnavailable(f"the Memex server at {self.url} did not answer in time") from exc
            except httpx.HTTPError as exc:
                raise errors.ServiceUnavailable(
                    f"cannot reach the Memex server at {self.url}: check that it is running and that the address is "
                    f"right ({str(exc) or type(exc).__name__})"
                ) from exc
            wait = _retry_after(response)
            # A rate limit with a short wait is waited out: a large folder sync should slow down, not stop.
            if wait is not None and wait <= MAX_RATE_LIMIT_WAIT and attempt < RATE_LIMIT_RETRIES:
                await asyncio.sleep(wait)
                continue
            break
        if response.is_error:
            raise _error(response)
        return response

    async def find_kb(self, name_or_id: str, *, create: bool) -> dict[str, Any] | None:
        """A KB by id or name (the caller's own first); created when asked and absent."""
        try:
            return dict((await self._call("GET", f"/api/kbs/{uuid.UUID(name_or_id)}")).json())
        except ValueError:
            pass
        found = [kb for kb in (await self._call("GET", "/api/kbs")).json() if kb["name"] == name_or_id]
        found.sort(key=lambda kb: kb["role"] != "owner")
        if len(found) > 1 and found[1]["role"] == "owner":
            ids = ", ".join(kb["id"] for kb in found)
            raise errors.InvalidInput(f"several knowledge bases are named {name_or_id!r}; pass one of these ids: {ids}")
        if found:
            return dict(found[0])
        if not create:
            return None
        return dict((await self._call("POST", "/api/kbs", json={"name": name_or_id})).json())

    async def documents(self, kb_id: str) -> list[dict[str, Any]]:
        """Every document of a KB."""
        found: list[dict[str, Any]] = []
        while True:
            params = {"limit": PAGE, "offset": len(found)}
            page = (await self._call("GET", f"/api/kbs/{kb_id}/documents", params=params)).json()["documents"]
            found.extend(page)
            if len(page) < PAGE:
                return found

    async def document(self, document_id: str) -> dict[str, Any] | None:
        try:
            return dict((await self._call("GET", f"/api/documents/{document_id}")).json())
        except errors.NotFound:
            return None

    async def upload(self, kb_id: str, *, name: str, data: bytes) -> dict[str, Any]:
        from memex.ingest.parsers import mime_for

        files = [("files", (name, data, mime_for(name)))]
        # A folder may hold two copies of a file, and `memex index` keeps both: so does the server, asked to.
        url = f"/api/kbs/{kb_id}/documents"
        body = (await self._call("POST", url, files=files, params={"duplicates": "keep"})).json()
        return dict(body["documents"][0])

    async def rename(self, document_id: str, *, name: str) -> None:
        await self._call("PATCH", f"/api/documents/{document_id}", json={"name": name})

    async def retry(self, document_id: str) -> None:
        await self._call("POST", f"/api/documents/{document_id}/retry")

    async def delete(self, document_id: str) -> None:
        with contextlib.suppress(errors.NotFound):  # already gone: that is what we wanted
            await self._call("DELETE", f"/api/documents/{document_id}")

    async def search(self, params: Sequence[tuple[str, str | int]]) -> dict[str, Any]:
        return dict((await self._call("GET", "/api/search", params=list(params))).json())

    async def kbs(self) -> list[dict[str, Any]]:
        """The knowledge bases the key may read."""
        return list((await self._call("GET", "/api/kbs")).json())

    async def document_file(self, document_id: str) -> bytes:
        """The original file of a document."""
        return (await self._call("GET", f"/api/documents/{document_id}/file")).content

    async def chat(self, message: str, *, kb_ids: Sequence[str] = ()) -> dict[str, Any]:
        """One whole answer (`stream: false`); a model may take minutes, so this waits longer than other calls."""
        body: dict[str, Any] = {"message": message, "stream": False}
        if kb_ids:
            body["kb"] = list(kb_ids)
        timeout = httpx.Timeout(CHAT_TIMEOUT_SECONDS, connect=10.0)
        return dict((await self._call("POST", "/api/chat", json=body, timeout=timeout)).json())

    async def chat_events(self, body: dict[str, Any]) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """`POST /api/chat` streamed: its (event, data) pairs as they arrive; closing it ends the request."""
        timeout = httpx.Timeout(CHAT_TIMEOUT_SECONDS, connect=10.0)
        try:
            async with self._http.stream("POST", "/api/chat", json=body, timeout=timeout) as response:
                if response.is_error:
                    await response.aread()
                    raise _error(response)
                name, data = "message", ""
                async for line in response.aiter_lines():
                    if line.startswith("event:"):
                        name = line[6:].strip()
                    elif line.startswith("data:"):
                        data += line[5:].strip()
                    elif not line and data:
                        yield name, json.loads(data)
                        name, data = "message", ""
        except httpx.TimeoutException as exc:
            raise errors.ServiceUnavailable(f"the Memex server at {self.url} did not answer in time") from exc
        except httpx.HTTPError as exc:
            raise errors.ServiceUnavailable(f"lost the Memex server at {self.url}: {exc}") from exc


@dataclass
class _Plan:
    uploads: list[tuple[ScannedFile, str, str]] = field(default_factory=list)  # file, name, outcome
    retries: list[tuple[str, str]] = field(default_factory=list)  # document id, name
    waits: list[tuple[str, str]] = field(default_factory=list)  # document id, name: already queued on the server
    renames: list[tuple[str, str]] = field(default_factory=list)  # document id, new name
    removals: list[tuple[str, str]] = field(default_factory=list)  # document id, name
    unchanged: int = 0

    @property
    def size(self) -> int:
        pairs = len(self.retries) + len(self.waits) + len(self.renames) + len(self.removals)
        return self.unchanged + len(self.uploads) + pairs


def _plan(root: Path, files: list[ScannedFile], remote: list[dict[str, Any]], protected: list[str]) -> _Plan:
    """Compare local files with the KB's documents by name and sha256 (runs in a thread: it hashes)."""
    from memex.ingest.scan import sha256_file

    base = root.parent
    prefix = root.name
    mine = {d["name"]: d for d in remote if not prefix or d["name"] == prefix or d["name"].startswith(prefix + "/")}
    local = {f.path.relative_to(base).as_posix(): f for f in files}
    shielded = [Path(p).relative_to(base).as_posix() for p in protected if Path(p).is_relative_to(base)]
    vanished: dict[str, list[dict[str, Any]]] = {}
    for name, doc in mine.items():
        if name not in local and not any(name == p or name.startswith(p + "/") for p in shielded):
            vanished.setdefault(doc["sha256"], []).append(doc)
    plan = _Plan()
    for name, file in local.items():
        sha = sha256_file(file.path)
        existing = mine.get(name)
        if existing is not None and existing["sha256"] == sha:
            if existing["status"] == "indexed":
                plan.unchanged += 1
            elif existing["status"] == "failed" and existing.get("retryable", True):
                plan.retries.append((existing["id"], name))
            else:
                plan.waits.append((existing["id"], name))
        elif existing is None and vanished.get(sha):
            plan.renames.append((vanished[sha].pop()["id"], name))
        else:
            plan.uploads.append((file, name, "added" if existing is None else "updated"))
    plan.removals = [(d["id"], d["name"]) for group in vanished.values() for d in group]
    return plan


async def sync(client: RemoteClient, *, kb_id: str, paths: Sequence[Path], progress: ProgressSink) -> IndexSummary:
    """Make the KB hold what the folders hold, sending only content the server lacks, then wait for indexing."""
    from memex.ingest.folders import IndexSummary
    from memex.ingest.scan import Failure, read_file, scan

    started = time.perf_counter()
    summary = IndexSummary()
    remote = await client.documents(kb_id)
    plans: list[_Plan] = []
    for root in paths:
        root = root.expanduser().resolve()
        scanned = await asyncio.to_thread(scan, root)
        summary.skipped += scanned.skipped
        summary.failed.extend(scanned.failures)
        plans.append(await asyncio.to_thread(_plan, root, scanned.files, remote, [f.path for f in scanned.failures]))
    progress.planned(sum(plan.size for plan in plans))

    pending: dict[str, tuple[str, str]] = {}  # document id -> (name, outcome)
    for plan in plans:
        summary.unchanged += plan.unchanged
        for _ in range(plan.unchanged):
            progress.advance("unchanged", "")
        for document_id, name in plan.renames:
            await client.rename(document_id, name=name)
            summary.renamed += 1
            progress.advance("renamed", name)
        for document_id, name in plan.removals:
            await client.delete(document_id)
            summary.removed += 1
            progress.advance("removed", name)
        for document_id, name in plan.retries:
            # Someone queued it again meanwhile, or the file cannot be indexed after all: wait for it, and report it.
            with contextlib.suppress(errors.Conflict):
                await client.retry(document_id)
            pending[document_id] = (name, "updated")
        for document_id, name in plan.waits:
            pending[document_id] = (name, "updated")

    gate = asyncio.Semaphore(UPLOADS_AT_ONCE)

    async def send(file: ScannedFile, name: str, outcome: str) -> None:
        async with gate:
            try:
                data, _ = await asyncio.to_thread(read_file, file.path)
                accepted = await client.upload(kb_id, name=name, data=data)
            except OSError as exc:
                summary.failed.append(Failure(path=name, reason=f"cannot read: {exc.strerror or exc}"))
                progress.advance("failed", name)
                return
            except _FATAL:
                raise
            except errors.MemexError as exc:
                summary.failed.append(Failure(path=name, reason=exc.message))
                progress.advance("failed", name)
                return
            pending[accepted["id"]] = (name, outcome)

    await asyncio.gather(*(send(*upload) for plan in plans for upload in plan.uploads))
    await _wait(client, pending, summary, progress)
    summary.seconds = time.perf_counter() - started
    return summary


async def _wait(
    client: RemoteClient, pending: dict[str, tuple[str, str]], summary: IndexSummary, progress: ProgressSink
) -> None:
    """Poll until every pending document is indexed or failed (oldest first: the queue is first in, first out)."""
    from memex.ingest.scan import Failure

    last_change = time.monotonic()
    while pending:
        window = list(pending)[:POLL_WINDOW]
        found = await asyncio.gather(*(client.document(document_id) for document_id in window))
        for document_id, doc in zip(window, found, strict=True):
            name, outcome = pending[document_id]
            if doc is None:
                summary.failed.append(Failure(path=name, reason="deleted on the server before it was indexed"))
            elif doc["status"] == "indexed":
                setattr(summary, outcome, getattr(summary, outcome) + 1)
                summary.chunks += doc["chunk_count"]
            elif doc["status"] == "failed":
                summary.failed.append(Failure(path=name, reason=doc["error"] or "failed"))
            else:
                continue
            del pending[document_id]
            progress.advance("failed" if doc is None or doc["status"] == "failed" else outcome, name)
            last_change = time.monotonic()
        if pending:
            if time.monotonic() - last_change > STALL_SECONDS:
                raise errors.ServiceUnavailable(
                    f"the server indexed nothing for {STALL_SECONDS / 60:.0f} minutes ({len(pending)} files waiting): "
                    "is a worker running (`memex serve` without --no-worker, or `memex worker`)?"
                )
            await asyncio.sleep(POLL_SECONDS)
