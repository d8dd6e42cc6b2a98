"""Walking the folders to index: which files to consider, which to skip, what could not be read."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from memex.errors import InvalidInput
from memex.ingest.parsers import SUPPORTED_EXTENSIONS


@dataclass(frozen=True, slots=True)
class ScannedFile:
    path: Path
    source_path: str
    size: int
    modified_at: datetime


@dataclass(frozen=True, slots=True)
class Failure:
    path: str
    reason: str


@dataclass
class ScanResult:
    files: list[ScannedFile] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    skipped: int = 0


def _stat_file(path: Path) -> ScannedFile:
    st = path.stat()
    return ScannedFile(
        path=path, source_path=str(path), size=st.st_size, modified_at=datetime.fromtimestamp(st.st_mtime, tz=UTC)
    )


def scan(root: Path) -> ScanResult:
    """Supported files under root (or root itself), skipping hidden entries; unreadable folders become failures."""
    root = root.expanduser().absolute()
    if not root.exists():
        raise InvalidInput(f"path does not exist: {root}")
    result = ScanResult()
    if root.is_file():
        if root.suffix.lower() in SUPPORTED_EXTENSIONS:
            result.files.append(_stat_file(root))
        else:
            result.skipped += 1
        return result
    if not os.access(root, os.R_OK | os.X_OK):
        raise InvalidInput(f"cannot read folder (permission denied): {root}")

    def on_error(exc: OSError) -> None:
        result.failures.append(Failure(path=str(exc.filename or root), reason=f"cannot read: {exc.strerror or exc}"))

    for folder, dirs, names in os.walk(root, onerror=on_error):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            if name.startswith("."):
                continue
            path = Path(folder) / name
            if path.suffix.lower() not in SUPPORTED_EXTENSIONS:
                result.skipped += 1
                continue
            try:
                if not path.is_file():
                    continue
                result.files.append(_stat_file(path))
            except FileNotFoundError:
                result.failures.append(Failure(path=str(path), reason="file disappeared during the scan"))
            except OSError as exc:
                result.failures.append(Failure(path=str(path), reason=f"cannot read: {exc.strerror or exc}"))
    return result


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_file(path: Path) -> tuple[bytes, str]:
    data = path.read_bytes()
    return data, hashlib.sha256(data).hexdigest()
