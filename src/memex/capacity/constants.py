"""The measured constants an estimate rests on: where they come from, and how they are stored."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from memex.errors import ConfigurationError

FILE_NAME = "capacity.json"


@dataclass(frozen=True)
class Constants:
    """Per-chunk and per-request costs, measured on one machine with one configuration."""

    measured_on: str  # the machine, in words
    measured_at: str  # ISO date
    chunk_tokens: int  # MEMEX_CHUNK_TOKENS during the measurement
    chunks_per_text_kb: float  # chunks made from each KB of extracted text
    chunk_table_bytes: float  # chunks table (heap and TOAST) per chunk
    hnsw_bytes: float  # HNSW index per chunk
    gin_bytes: float  # full-text GIN index per chunk
    chunk_btree_bytes: float  # the chunks table's other indexes per chunk
    bm25_stats_bytes: float  # BM25 term statistics per chunk
    document_bytes: float  # documents row and its indexes per document
    blob_bytes_per_file_byte: float  # blobs table per byte of original file (TOAST compresses text)
    embed_chunks_per_cpu_second: float  # chunks embedded per second of one core
    search_cpu_ms: float  # API process CPU per hybrid search, query embedding included
    search_db_cpu_ms: float  # PostgreSQL CPU per hybrid search
    process_rss_mb: float  # resident memory of an API or worker process with the model loaded
    source: str = "defaults shipped with Memex"

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


# Measured by `python benchmarks/capacity.py` on the development VM (2 shared vCPUs, busy with other work; embedded
# PostgreSQL 16.2 with pgvector 0.6; all-MiniLM-L6-v2 at 256 tokens a chunk; SciFact abstracts). gin_bytes was
# measured on 2026-12-08 with GIN's pending list off (between 3,000 and 6,000 chunks: 355 B), as the benchmark now
# does: with it on, the index grows in steps of up to 4 MiB that swamp a small store's growth. Measure your
# own installation: its CPU decides the rates, and your documents decide chunks per KB.
DEFAULTS = Constants(
    measured_on="development VM, 2 shared vCPUs (benchmarks/capacity.py, 4,000-chunk store)",
    measured_at="2026-11-25",
    chunk_tokens=256,
    chunks_per_text_kb=1.41,
    chunk_table_bytes=3690.0,
    hnsw_bytes=1861.0,
    gin_bytes=355.0,
    chunk_btree_bytes=90.0,
    bm25_stats_bytes=525.0,
    document_bytes=727.0,
    blob_bytes_per_file_byte=1.13,
    embed_chunks_per_cpu_second=8.3,
    search_cpu_ms=45.0,
    search_db_cpu_ms=12.0,
    process_rss_mb=800.0,
)


def path_in(data_dir: Path) -> Path:
    return data_dir / FILE_NAME


def load(data_dir: Path) -> Constants:
    """This installation's measured constants, or the shipped defaults when none were measured."""
    path = path_in(data_dir)
    if not path.exists():
        return DEFAULTS
    try:
        raw = json.loads(path.read_text())
        known = {f.name for f in fields(Constants)}
        return replace(Constants(**{k: v for k, v in raw.items() if k in known}), source=str(path))
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigurationError(
            f"cannot read the measured constants in {path}: {exc} (run benchmarks/capacity.py again, or delete it "
            "to use the shipped defaults)"
        ) from exc


def save(constants: Constants, data_dir: Path) -> Path:
    """Store measured constants where `memex capacity` finds them."""
    path = path_in(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {k: v for k, v in constants.as_dict().items() if k != "source"}
    path.write_text(json.dumps(body, indent=2) + "\n")
    return path
