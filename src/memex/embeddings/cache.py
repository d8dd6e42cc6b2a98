"""An LRU cache of query embeddings, so a repeated query skips the model."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

from memex.embeddings.base import Embedder, Vectors


class CachedEmbedder:
    """Wraps an embedder; caches `embed_query` only (documents are embedded once anyway)."""

    def __init__(self, inner: Embedder, *, size: int) -> None:
        self.inner = inner
        self._size = size
        self._cache: OrderedDict[str, Vectors] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def dimension(self) -> int:
        return self.inner.dimension

    def close(self) -> None:
        """Let go of the model's connections (an API client's pool); the local model holds none."""
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> Vectors:
        with self._lock:
            hit = self._cache.get(text)
            if hit is not None:
                self._cache.move_to_end(text)
                self.hits += 1
                return hit
        vector = self.inner.embed_query(text)
        with self._lock:
            self.misses += 1
            if self._size:
                self._cache[text] = vector
                while len(self._cache) > self._size:
                    self._cache.popitem(last=False)
        return vector
