"""Any OpenAI-compatible `/embeddings` endpoint (OpenAI, Ollama, vLLM, llama.cpp server...)."""

from __future__ import annotations

from collections.abc import Sequence

import httpx
import numpy as np

from memex.embeddings.base import Vectors, normalise
from memex.embeddings.spec import EmbeddingSpec
from memex.errors import ConfigurationError, ServiceUnavailable
from memex.settings import Settings

_BATCH = 64


class OpenAIEmbedder:
    def __init__(self, *, base_url: str, model: str, dimension: int, api_key: str | None, timeout: float) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout)
        self._where = base_url.rstrip("/")
        self._timeout = timeout
        self.name = model
        self.dimension = dimension

    @classmethod
    def from_spec(cls, spec: EmbeddingSpec, settings: Settings) -> OpenAIEmbedder:
        if not spec.base_url:
            raise ConfigurationError(
                "the openai embedding provider needs the address of the embeddings API: set MEMEX_EMBEDDING_BASE_URL "
                "(for example https://api.openai.com/v1 or http://localhost:11434/v1)"
            )
        key = settings.embedding_api_key.get_secret_value() if settings.embedding_api_key else None
        return cls(
            base_url=spec.base_url,
            model=spec.name,
            dimension=spec.dimension,
            api_key=key,
            timeout=settings.embedding_timeout_seconds,
        )

    def _call(self, texts: Sequence[str]) -> Vectors:
        try:
            response = self._client.post("/embeddings", json={"model": self.name, "input": list(texts)})
        except httpx.TimeoutException as exc:
            raise ServiceUnavailable(
                f"the embeddings API at {self._where} did not answer within {self._timeout:g} s"
            ) from exc
        except httpx.HTTPError as exc:
            raise ServiceUnavailable(f"cannot reach the embeddings API at {self._where}: {exc}") from exc
        if response.status_code >= 400:
            raise ServiceUnavailable(
                f"the embeddings API at {self._where} answered {response.status_code}: {_error_message(response)}"
            )
        try:
            data = sorted(response.json()["data"], key=lambda item: item["index"])
            vectors = np.asarray([item["embedding"] for item in data], dtype=np.float32)
        except (KeyError, TypeError, ValueError) as exc:
            raise ServiceUnavailable(
                f"the embeddings API at {self._where} sent an answer that is not a list of embeddings"
            ) from exc
        if vectors.ndim != 2 or vectors.shape[0] != len(texts):
            raise ServiceUnavailable(
                f"the embeddings API at {self._where} sent {vectors.shape[0] if vectors.ndim else 0} embeddings "
                f"for {len(texts)} texts"
            )
        if vectors.shape[1] != self.dimension:
            raise ConfigurationError(
                f"the embeddings API's model {self.name} makes {vectors.shape[1]}-dimensional vectors, but Memex "
                f"expects {self.dimension}: set MEMEX_EMBEDDING_DIMENSION={vectors.shape[1]}, then rebuild the "
                f"stored vectors with `memex reembed --model {self.name} --dimension {vectors.shape[1]}`"
            )
        return normalise(vectors)

    def close(self) -> None:
        self._client.close()

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.concatenate([self._call(texts[i : i + _BATCH]) for i in range(0, len(texts), _BATCH)])

    def embed_query(self, text: str) -> Vectors:
        vector: Vectors = self._call([text])[0]
        return vector


def _error_message(response: httpx.Response) -> str:
    """The provider's own error message when it sent one (OpenAI's shape), else the start of the body."""
    try:
        body = response.json()
        message = body["error"]["message"] if isinstance(body.get("error"), dict) else body.get("error")
    except (ValueError, AttributeError, KeyError, TypeError):
        message = None
    return str(message or response.text[:200] or response.reason_phrase)
