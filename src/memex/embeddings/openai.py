"""Any OpenAI-compatible `/embeddings` endpoint (OpenAI, Ollama, vLLM, llama.cpp server...)."""

from __future__ import annotations

from collections.abc import Sequence

import httpx
import numpy as np

from memex.embeddings.base import Vectors, normalise
from memex.errors import ConfigurationError, ServiceUnavailable
from memex.settings import Settings

_BATCH = 64


class OpenAIEmbedder:
    def __init__(self, *, base_url: str, model: str, dimension: int, api_key: str | None) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=60.0)
        self.name = model
        self.dimension = dimension

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenAIEmbedder:
        if not settings.embedding_base_url:
            raise ConfigurationError(
                "MEMEX_EMBEDDING_PROVIDER=openai needs MEMEX_EMBEDDING_BASE_URL (e.g. https://api.openai.com/v1)"
            )
        key = settings.embedding_api_key.get_secret_value() if settings.embedding_api_key else None
        return cls(
            base_url=settings.embedding_base_url,
            model=settings.embedding_model,
            dimension=settings.embedding_dimension,
            api_key=key,
        )

    def _call(self, texts: Sequence[str]) -> Vectors:
        try:
            response = self._client.post("/embeddings", json={"model": self.name, "input": list(texts)})
            response.raise_for_status()
            data = sorted(response.json()["data"], key=lambda item: item["index"])
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            raise ServiceUnavailable(f"embedding API failed: {exc}") from exc
        vectors = np.asarray([item["embedding"] for item in data], dtype=np.float32)
        if vectors.shape != (len(texts), self.dimension):
            raise ConfigurationError(
                f"embedding API returned vectors of shape {vectors.shape}; set MEMEX_EMBEDDING_DIMENSION to match"
            )
        return normalise(vectors)

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.concatenate([self._call(texts[i : i + _BATCH]) for i in range(0, len(texts), _BATCH)])

    def embed_query(self, text: str) -> Vectors:
        vector: Vectors = self._call([text])[0]
        return vector
