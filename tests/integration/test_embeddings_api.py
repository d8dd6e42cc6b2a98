"""The OpenAI-compatible embedder against the double: vectors, and what a person reads when the API misbehaves."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from memex.embeddings import build_embedder
from memex.embeddings.cache import CachedEmbedder
from memex.embeddings.spec import EmbeddingSpec
from memex.errors import ConfigurationError, ServiceUnavailable
from memex.settings import Settings
from tests.doubles.openai_server import OpenAIDouble
from tests.doubles.script import fail, hang


def settings_for(double: OpenAIDouble, tmp_path: Path, **overrides: object) -> Settings:
    return Settings(
        data_dir=tmp_path,
        embedding_provider="openai",
        embedding_base_url=double.base_url,
        embedding_model="double-embed",
        embedding_dimension=128,
        **overrides,  # type: ignore[arg-type]
    )


@contextmanager
def embedder_for(settings: Settings) -> Iterator[CachedEmbedder]:
    embedder = build_embedder(settings)
    assert isinstance(embedder, CachedEmbedder)
    try:
        yield embedder
    finally:
        embedder.close()


def test_vectors_come_back_normalised_in_order_and_in_batches(openai_double: OpenAIDouble, tmp_path: Path) -> None:
    with embedder_for(settings_for(openai_double, tmp_path, embedding_api_key="sk-test")) as embedder:
        openai_double.api_key = "sk-test"
        texts = [f"note {i} about herons" for i in range(100)]
        vectors = embedder.embed_documents(texts)
        assert vectors.shape == (100, 128)
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
        assert [len(r.body["input"]) for r in openai_double.embeddings] == [64, 36]
        assert openai_double.embeddings[0].body["model"] == "double-embed"
        assert np.allclose(embedder.embed_query("note 7 about herons"), vectors[7], atol=1e-6)


def test_errors_say_what_the_api_did(openai_double: OpenAIDouble, tmp_path: Path) -> None:
    with embedder_for(settings_for(openai_double, tmp_path)) as embedder:
        openai_double.push(fail(500), endpoint="embed")
        with pytest.raises(ServiceUnavailable, match="answered 500: The server had an error"):
            embedder.embed_query("heron")
        openai_double.api_key = "sk-other"
        with pytest.raises(ServiceUnavailable, match="answered 401: Incorrect API key"):
            embedder.embed_query("heron")


def test_an_api_that_never_answers_times_out(openai_double: OpenAIDouble, tmp_path: Path) -> None:
    with embedder_for(settings_for(openai_double, tmp_path, embedding_timeout_seconds=0.5)) as embedder:
        openai_double.push(hang(), endpoint="embed")
        with pytest.raises(ServiceUnavailable, match=r"did not answer within 0\.5 s"):
            embedder.embed_query("heron")


def test_a_wrong_dimension_names_the_right_one(openai_double: OpenAIDouble, tmp_path: Path) -> None:
    openai_double.dimension = 96
    with (
        embedder_for(settings_for(openai_double, tmp_path)) as embedder,
        pytest.raises(ConfigurationError, match=r"makes 96-dimensional vectors.*--dimension 96"),
    ):
        embedder.embed_query("heron")


def test_the_local_provider_has_only_the_bundled_model(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    with pytest.raises(ConfigurationError, match="one model, all-MiniLM-L6-v2"):
        build_embedder(settings, EmbeddingSpec(provider="local", name="bge-large", dimension=1024))
