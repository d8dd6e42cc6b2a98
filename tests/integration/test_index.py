"""Incremental indexing of folders: add, change, rename, delete, and every kind of bad input."""

import shutil
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from memex.ingest.folders import index_paths
from memex.kbs import store as kbs
from memex.runtime import Runtime
from tests.conftest import DATA

GOOD = [
    "sample.md",
    "sample.org",
    "sample.txt",
    "sample.pdf",
    "sample.rst",
    "sample.html",
    "sample.json",
    "sample.docx",
]


async def _kb(runtime: Runtime, name: str = "notes") -> uuid.UUID:
    async with runtime.engine.begin() as conn:
        return (await kbs.create(conn, name=name, owner_id=None)).id


async def _state(runtime: Runtime, kb_id: uuid.UUID) -> dict[str, tuple[uuid.UUID, int, set[int]]]:
    """source path -> (document id, chunk count, chunk ids)."""
    async with runtime.engine.connect() as conn:
        rows = await conn.execute(
            sa.text(
                "SELECT d.id, d.source_path, array_remove(array_agg(c.id), NULL) AS ids FROM documents d "
                "LEFT JOIN chunks c ON c.document_id = d.id WHERE d.kb_id = :kb GROUP BY d.id"
            ),
            {"kb": kb_id},
        )
        return {Path(r.source_path).name: (r.id, len(r.ids), set(r.ids)) for r in rows}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "notes"
    (root / "sub").mkdir(parents=True)
    for name in GOOD:
        shutil.copy(DATA / name, root / ("sub" if name.endswith(".pdf") else "") / name)
    (root / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (root / ".hidden.md").write_text("# hidden\n\nnot indexed")
    return root


async def test_indexes_every_format_then_skips_unchanged(runtime: Runtime, folder: Path) -> None:
    kb_id = await _kb(runtime)
    first = await index_paths(runtime, kb_id=kb_id, paths=[folder])
    assert first.failed == []
    assert (first.added, first.updated, first.unchanged, first.removed) == (8, 0, 0, 0)
    assert first.skipped == 1
    state = await _state(runtime, kb_id)
    assert set(state) == set(GOOD)
    assert all(count > 0 for _, count, _ in state.values())

    second = await index_paths(runtime, kb_id=kb_id, paths=[folder])
    assert (second.added, second.updated, second.unchanged, second.chunks) == (0, 0, 8, 0)
    assert await _state(runtime, kb_id) == state


async def test_changed_file_is_replaced_and_others_untouched(runtime: Runtime, folder: Path) -> None:
    kb_id = await _kb(runtime)
    await index_paths(runtime, kb_id=kb_id, paths=[folder])
    before = await _state(runtime, kb_id)
    (folder / "sample.txt").write_text("Completely new text about zebras and their stripes.\n")
    summary = await index_paths(runtime, kb_id=kb_id, paths=[folder])
    assert (summary.updated, summary.unchanged) == (1, 7)
    after = await _state(runtime, kb_id)
    assert after["sample.txt"][0] == before["sample.txt"][0]  # same document, new chunks
    assert after["sample.txt"][2].isdisjoint(before["sample.txt"][2])
    assert {k: v for k, v in after.items() if k != "sample.txt"} == {
        k: v for k, v in before.items() if k != "sample.txt"
    }
    async with runtime.engine.connect() as conn:
        texts = (
            await conn.execute(sa.text("SELECT text FROM chunks WHERE document_id = :d"), {"d": after["sample.txt"][0]})
        ).scalars()
        assert "zebras" in " ".join(texts)


async def test_deleted_file_is_removed_with_its_chunks_and_blob(runtime: Runtime, folder: Path) -> None:
    kb_id = await _kb(runtime)
    await index_paths(runtime, kb_id=kb_id, paths=[folder])
    (folder / "sample.json").unlink()
    summary = await index_paths(runtime, kb_id=kb_id, paths=[folder])
    assert summary.removed == 1
    assert "sample.json" not in await _state(runtime, kb_id)
    async with runtime.engine.connect() as conn:
        sha = __import__("hashlib").sha256((DATA / "sample.json").read_bytes()).hexdigest()
        assert (
            await conn.execute(sa.text("SELECT count(*) FROM blobs WHERE sha256 = :s"), {"s": sha})
        ).scalar_one() == 0


async def test_moved_file_keeps_its_chunks_without_reembedding(runtime: Runtime, folder: Path) -> None:
    kb_id = await _kb(runtime)
    await index_paths(runtime, kb_id=kb_id, paths=[folder])
    before = await _state(runtime, kb_id)
    (folder / "moved").mkdir()
    (folder / "sample.md").rename(folder / "moved" / "renamed.md")
    summary = await index_paths(runtime, kb_id=kb_id, paths=[folder])
    assert (summary.renamed, summary.added, summary.removed, summary.chunks) == (1, 0, 0, 0)
    after = await _state(runtime, kb_id)
    assert after["renamed.md"] == before["sample.md"]


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("corrupt.pdf", "corrupt PDF"),
        ("encrypted.pdf", "encrypted"),
        ("truncated.docx", "DOCX"),
        ("invalid.json", "invalid JSON at line"),
        ("empty.md", "file is empty"),
        ("binary.md", "binary content"),
    ],
)
async def test_bad_file_is_reported_and_the_rest_indexed(
    runtime: Runtime, folder: Path, name: str, reason: str
) -> None:
    shutil.copy(DATA / name, folder / name)
    kb_id = await _kb(runtime)
    summary = await index_paths(runtime, kb_id=kb_id, paths=[folder])
    assert summary.added == 8
    assert [(Path(f.path).name, reason in f.reason) for f in summary.failed] == [(name, True)]


async def test_corrupt_new_version_leaves_the_indexed_one_untouched(runtime: Runtime, folder: Path) -> None:
    kb_id = await _kb(runtime)
    await index_paths(runtime, kb_id=kb_id, paths=[folder])
    before = await _state(runtime, kb_id)
    shutil.copy(DATA / "corrupt.pdf", folder / "sub" / "sample.pdf")
    summary = await index_paths(runtime, kb_id=kb_id, paths=[folder])
    assert [Path(f.path).name for f in summary.failed] == ["sample.pdf"]
    assert await _state(runtime, kb_id) == before


_SCAN_AS_NOBODY = """
import json, os, sys
from pathlib import Path
from memex.errors import InvalidInput
from memex.ingest.scan import scan
if os.geteuid() == 0:
    # Drop to nobody after the imports: root reads any folder, so permissions only bite for others.
    os.setgid(65534)
    os.setuid(65534)
try:
    r = scan(Path(sys.argv[1]))
    print(json.dumps({"files": [f.path.name for f in r.files], "failures": [[f.path, f.reason] for f in r.failures]}))
except InvalidInput as exc:
    print(json.dumps({"fatal": exc.message}))
"""


def _scan_as_unprivileged(root: Path) -> dict[str, object]:
    import json
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", _SCAN_AS_NOBODY, str(root)], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_unreadable_folder_is_reported_and_the_rest_scanned() -> None:
    import tempfile

    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        root = Path(tmp) / "notes"
        (root / "locked").mkdir(parents=True)
        (root / "open.md").write_text("# open\n\nreadable")
        (root / "locked" / "secret.md").write_text("# secret\n\nhidden")
        for path in (Path(tmp), root):
            path.chmod(0o755)
        (root / "locked").chmod(0)
        (root / "open.md").chmod(0o644)
        result = _scan_as_unprivileged(root)
        assert result["files"] == ["open.md"]
        failures = result["failures"]
        assert isinstance(failures, list) and len(failures) == 1
        assert failures[0][0].endswith("locked") and "permission denied" in failures[0][1].lower()
        root.chmod(0)
        assert "permission denied" in str(_scan_as_unprivileged(root)["fatal"])


async def test_documents_under_an_unreadable_folder_are_kept(runtime: Runtime, folder: Path) -> None:
    from memex.ingest.folders import _plan
    from memex.ingest.scan import scan

    kb_id = await _kb(runtime)
    await index_paths(runtime, kb_id=kb_id, paths=[folder])
    from memex.documents.store import files_under

    async with runtime.engine.connect() as conn:
        stored = await files_under(conn, kb_id=kb_id, prefix=str(folder))
    # What a scan sees when sub/ cannot be read: its files are absent and the folder is a failure.
    visible = [f for f in scan(folder).files if "/sub/" not in f.source_path]
    plan = _plan(visible, stored, [], [str(folder / "sub")])
    assert plan.removals == []
    assert plan.unchanged == 7


async def test_nonexistent_path_is_fatal(runtime: Runtime, tmp_path: Path) -> None:
    from memex.errors import InvalidInput

    kb_id = await _kb(runtime)
    with pytest.raises(InvalidInput, match="does not exist"):
        await index_paths(runtime, kb_id=kb_id, paths=[tmp_path / "missing"])


async def test_file_disappearing_mid_scan_is_reported(runtime: Runtime, folder: Path) -> None:
    from memex.ingest.folders import _plan
    from memex.ingest.scan import Failure, scan

    files = scan(folder).files
    (folder / "sample.txt").unlink()
    failures: list[Failure] = []
    plan = _plan(files, [], failures, [])
    assert [(Path(f.path).name, f.reason) for f in failures] == [("sample.txt", "file disappeared during the scan")]
    assert len(plan.work) == 7
