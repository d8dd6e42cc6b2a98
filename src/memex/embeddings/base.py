"""The embedding interface every provider implements."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]


class Embedder(Protocol):
    """Turns text into unit-length vectors; calls block, so async code runs them in a thread."""

    @property
    def name(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        """One row per text, L2-normalised."""
        ...

    def embed_query(self, text: str) -> Vectors:
        """A single L2-normalised vector for a search query."""
        ...


def normalise(vectors: Vectors) -> Vectors:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    out: Vectors = (vectors / np.maximum(norms, 1e-12)).astype(np.float32)
    return out


def vector_literal(vector: np.ndarray) -> str:
    """pgvector's text form of a vector (7 significant digits; a list comprehension formats 384 floats in a
    third of the time np.char.mod takes, and this runs for every query and every chunk stored)."""
    return "[" + ",".join([f"{x:.7g}" for x in vector.tolist()]) + "]"
