"""all-MiniLM-L6-v2 on ONNX Runtime: 3 ms per query and 0.2 s to load, against 12 ms and 5 s for torch."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Encoding

from memex.embeddings.base import Vectors, normalise
from memex.embeddings.model_files import DIMENSION, MAX_TOKENS, MODEL_NAME, WEIGHTS_DIGEST, tokenizer
from memex.errors import ConfigurationError


def onnx_path(cache_dir: Path) -> Path:
    # "-fused": the graph after the transformer optimizer (export.fuse); a plain export under the old name is not used.
    return cache_dir / f"{MODEL_NAME}-{WEIGHTS_DIGEST}-fused.onnx"


def ensure_onnx(cache_dir: Path) -> Path:
    """The ONNX export of the bundled weights, made once (about 5 s, offline) if missing."""
    path = onnx_path(cache_dir)
    if path.exists():
        return path
    print("Preparing the embedding model (one time, about 5 s)...", file=sys.stderr)
    done = subprocess.run(
        [sys.executable, "-m", "memex.embeddings.export", str(path)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0 or not path.exists():
        reason = done.stderr.strip()[-2000:]
        if "ModuleNotFoundError" in reason:
            reason = (
                f"{path.name} is not in {cache_dir} and the export needs torch and the weights: install them once "
                "with `pip install 'memex[export]'` (torch==2.13.0 first, for the CPU build), or copy the file there "
                f"(MEMEX_MODEL_CACHE_DIR)\n{reason.splitlines()[-1]}"
            )
        raise ConfigurationError(f"could not export the embedding model to ONNX: {reason}")
    return path


# Tokens of one model call (rows × padded width): four full 256-token chunks, 32 short ones. On 2 cores with 2 MiB
# of L2 each, a layer's activations then stay in cache: 10 % more chunks/s than 32 full chunks a call (SciFact
# abstracts, median of 6 alternated runs: 35.4 against 32.0), while short chunks still go 32 a call.
TOKENS_PER_CALL = 1024


class LocalEmbedder:
    """The bundled model, loaded once per process; thread-safe (ONNX Runtime sessions are)."""

    name = MODEL_NAME
    dimension = DIMENSION

    def __init__(self, session: ort.InferenceSession, *, batch_size: int = 32) -> None:
        self._session = session
        self._batch_size = batch_size
        self._tokenizer = tokenizer()
        self._lock = threading.Lock()

    @classmethod
    def load(cls, cache_dir: Path, *, batch_size: int = 32) -> LocalEmbedder:
        options = ort.SessionOptions()
        options.intra_op_num_threads = os.cpu_count() or 1
        options.log_severity_level = 3
        # No spinning: ORT's threads otherwise busy-wait after every call, taking the cores from PostgreSQL and the
        # event loop. Search (benchmarks/search_load.py, 10k chunks, 2 cores): server CPU per query 44.9 → 20.3 ms,
        # 8 clients 44.3 → 50.9 req/s; bulk embedding unchanged within noise (32.6 vs 31.9 chunks/s, median of 4).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(str(ensure_onnx(cache_dir)), options, providers=["CPUExecutionProvider"])
        return cls(session, batch_size=batch_size)

    def _run(self, encodings: Sequence[Encoding]) -> Vectors:
        width = min(MAX_TOKENS, max(len(e.ids) for e in encodings))
        ids = np.zeros((len(encodings), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        for row, enc in enumerate(encodings):
            n = min(len(enc.ids), width)
            ids[row, :n] = enc.ids[:n]
            mask[row, :n] = 1
            if len(enc.ids) > width:
                ids[row, n - 1] = enc.ids[-1]  # keep [SEP] last when truncating, as the model was trained
        # One inference at a time: the session already uses every core.
        with self._lock:
            hidden = self._session.run(
                None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            )[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        return normalise(pooled)

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        # Tokenize once, then batch chunks of similar token counts together: padding is arithmetic for nothing.
        encodings = self._tokenizer.encode_batch(list(texts))
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        for idx in self._calls(order, [min(len(e.ids), MAX_TOKENS) for e in encodings]):
            out[idx] = self._run([encodings[i] for i in idx])
        return out

    def _calls(self, order: list[int], widths: list[int]) -> list[list[int]]:
        """Split texts sorted by length into model calls: at most `batch_size` texts and, past one text, at most
        TOKENS_PER_CALL tokens of padded width."""
        calls: list[list[int]] = []
        for i in order:
            if calls and len(calls[-1]) < self._batch_size and (len(calls[-1]) + 1) * widths[i] <= TOKENS_PER_CALL:
                calls[-1].append(i)
            else:
                calls.append([i])
        return calls

    def embed_query(self, text: str) -> Vectors:
        vector: Vectors = self._run(self._tokenizer.encode_batch([text]))[0]
        return vector
