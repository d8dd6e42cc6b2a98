"""Hostile files against a real `memex serve`: each fails with its reason, while the server keeps answering,
another user's ordinary upload is indexed, and the server's own memory stays put (files are read elsewhere)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import httpx
from fastapi import FastAPI

from memex.runtime import Runtime
from tests.conftest import DATA
from tests.factories import Factory
from tests.ingest import hostile
from tests.integration.test_serve import memex_env, start_server, stop_server, wait_for

HOSTILE = {
    "bomb.pdf": (hostile.pdf_bomb(512), "the file needs more than 256 MB of memory to read (MEMEX_PARSE_MEMORY_MB)"),
    "brackets.md": (
        hostile.markdown_brackets(),
        "the file needs more than 2 s of CPU time to read (MEMEX_PARSE_CPU_SECONDS)",
    ),
    "deep.html": (hostile.nested_html(80_000), "HTML is nested more than 512 elements deep; Memex reads up to 512"),
    "newlines.org": (b"#+TITLE: Empty\n" + hostile.org_newlines(), "no text found in the file"),
}
# The server holds the embedding model and its caches; reading the PDF bomb in it would add a gigabyte or more.
RSS_GROWTH_BOUND = 512 * 1024 * 1024


def rss(pid: int) -> int:
    """The resident memory of a process, in bytes, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for process {pid}")


def upload(api: httpx.Client, kb_id: str, files: dict[str, bytes]) -> list[dict[str, Any]]:
    response = api.post(f"/api/kbs/{kb_id}/documents", files=[("files", (n, d)) for n, d in files.items()])
    assert response.status_code == 202, response.text
    return list(response.json()["documents"])


async def test_hostile_files_fail_with_their_reason_while_the_server_and_other_users_go_on(
    runtime: Runtime, database_url: str, model_cache_dir: Path, tmp_path: Path
) -> None:
    env = memex_env(
        database_url,
        tmp_path / "data",
        model_cache_dir,
        MEMEX_PARSE_MEMORY_MB="256",
        MEMEX_PARSE_CPU_SECONDS="2",
        MEMEX_PARSE_TIMEOUT_SECONDS="300",  # a loaded test machine stretches wall-clock time, not CPU time
    )
    served = start_server(env=env, log=tmp_path / "serve.log")
    try:
        # Bob joins after the first start, which made the admin (Alice, whose key `served` holds).
        make = Factory(runtime=runtime, app=cast(FastAPI, None))
        bob = await make.user()
        bob_kb = await make.personal_kb(bob)
        _, bob_key = await make.key(bob)
        baseline = rss(served.process.pid)
        with (
            served.client() as alice,
            httpx.Client(base_url=served.url, headers={"Authorization": f"Bearer {bob_key}"}, timeout=30) as bob_api,
        ):
            alice_kb = next(kb for kb in alice.get("/api/kbs").json() if kb["is_personal"])
            hostile_docs = [
                d for name, (data, _) in HOSTILE.items() for d in upload(alice, alice_kb["id"], {name: data})
            ]
            (ordinary,) = upload(bob_api, str(bob_kb.id), {"notes.md": (DATA / "sample.md").read_bytes()})
            peak = baseline
            answered = 0

            def settled() -> bool:
                nonlocal peak, answered
                health = httpx.get(f"{served.url}/api/health", timeout=30)
                assert health.status_code == 200, health.text
                answered += 1
                peak = max(peak, rss(served.process.pid))
                states = [alice.get(f"/api/documents/{d['id']}").json() for d in hostile_docs]
                states.append(bob_api.get(f"/api/documents/{ordinary['id']}").json())
                return all(s["status"] in ("indexed", "failed") for s in states)

            wait_for(settled, timeout=600, what="every upload to be indexed or failed")
            for d in hostile_docs:
                found = alice.get(f"/api/documents/{d['id']}").json()
                assert (found["status"], found["error"]) == ("failed", HOSTILE[d["name"]][1]), found
            mine = bob_api.get(f"/api/documents/{ordinary['id']}").json()
            assert mine["status"] == "indexed", mine["error"]
            assert answered > 0
            assert peak - baseline < RSS_GROWTH_BOUND, f"server grew from {baseline >> 20} to {peak >> 20} MiB"
            assert httpx.get(f"{served.url}/api/health", timeout=30).status_code == 200
    finally:
        assert stop_server(served) == 0, served.output()
    assert "Traceback" not in served.output()
