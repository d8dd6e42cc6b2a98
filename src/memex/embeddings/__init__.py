"""Embedding models behind one small interface: local ONNX MiniLM or an OpenAI-compatible API."""

from __future__ import annotations

from memex.embeddings.base import Embedder
from memex.settings import Settings


def build_embedder(settings: Settings) -> Embedder:
    """The embedder the settings ask for, wrapped in the query cache."""
    from memex.embeddings.cache import CachedEmbedder

    inner: Embedder
    if settings.embedding_provider == "openai":
        from memex.embeddings.openai import OpenAIEmbedder

        inner = OpenAIEmbedder.from_settings(settings)
    else:
        from memex.embeddings.local import LocalEmbedder

        inner = LocalEmbedder.load(settings.model_cache_dir, batch_size=settings.embedding_batch_size)
    return CachedEmbedder(inner, size=settings.query_cache_size)
