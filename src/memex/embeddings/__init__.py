"""Embedding models behind one small interface: local ONNX MiniLM or an OpenAI-compatible API."""

from __future__ import annotations

from memex.embeddings.base import Embedder
from memex.embeddings.spec import EmbeddingSpec
from memex.errors import ConfigurationError
from memex.settings import Settings


def build_embedder(settings: Settings, spec: EmbeddingSpec | None = None) -> Embedder:
    """The embedder for `spec` (default: the configured model), wrapped in the query cache."""
    from memex.embeddings.cache import CachedEmbedder

    spec = spec or EmbeddingSpec.from_settings(settings)
    inner: Embedder
    if spec.provider == "openai":
        from memex.embeddings.openai import OpenAIEmbedder

        inner = OpenAIEmbedder.from_spec(spec, settings)
    elif spec.provider == "local":
        from memex.embeddings.local import LocalEmbedder
        from memex.embeddings.model_files import DIMENSION, MODEL_NAME

        if (spec.name, spec.dimension) != (MODEL_NAME, DIMENSION):
            raise ConfigurationError(
                f"the local embedding provider has one model, {MODEL_NAME} ({DIMENSION} dimensions), "
                f"not {spec.describe()}"
            )
        inner = LocalEmbedder.load(settings.model_cache_dir, batch_size=settings.embedding_batch_size)
    else:
        raise ConfigurationError(f"unknown embedding provider {spec.provider!r}: use local or openai")
    return CachedEmbedder(inner, size=settings.query_cache_size)
