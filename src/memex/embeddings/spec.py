"""Which model the stored vectors come from: the record in `memex_meta`, and the generation that counts swaps.

The record is the truth every process follows: `memex reembed` builds vectors with a new model beside the old
ones and then swaps them in one transaction that also writes a new record with the next generation. A search
or a chunk writer that finds another generation than the one its embedder belongs to switches embedders.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from memex.settings import Settings


@dataclass(frozen=True, slots=True)
class EmbeddingSpec:
    """A model and where it runs; the API key is never part of it (each process reads its own)."""

    provider: str
    name: str
    dimension: int
    base_url: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> EmbeddingSpec:
        base_url = settings.embedding_base_url if settings.embedding_provider == "openai" else None
        return cls(
            provider=settings.embedding_provider,
            name=settings.embedding_model,
            dimension=settings.embedding_dimension,
            base_url=base_url,
        )

    def describe(self) -> str:
        return f"{self.name} ({self.dimension} dimensions)"

    def same_model(self, other: EmbeddingSpec) -> bool:
        """Whether vectors of one can be searched with queries embedded by the other."""
        return (self.name, self.dimension) == (other.name, other.dimension)


@dataclass(frozen=True, slots=True)
class StoredModel:
    """The record: the model of the vectors in `chunks.embedding`, and how many swaps came before."""

    spec: EmbeddingSpec
    generation: int = 0

    @classmethod
    def from_record(cls, value: dict[str, Any], *, settings: Settings) -> StoredModel:
        """Records written before swaps existed hold only name and dimension: the provider is then local for the
        bundled model and the configured one for any other."""
        from memex.embeddings.model_files import DIMENSION, MODEL_NAME

        configured = EmbeddingSpec.from_settings(settings)
        name, dimension = str(value["name"]), int(value["dimension"])
        bundled = (name, dimension) == (MODEL_NAME, DIMENSION)
        provider = str(value.get("provider") or ("local" if bundled else configured.provider))
        base_url = value.get("base_url", None if provider == "local" else configured.base_url)
        spec = EmbeddingSpec(provider=provider, name=name, dimension=dimension, base_url=base_url)
        return cls(spec=spec, generation=int(value.get("generation", 0)))

    def record(self) -> dict[str, Any]:
        return asdict(self.spec) | {"generation": self.generation}


def same_model(record: dict[str, Any] | None, settings: Settings) -> bool:
    """Whether a stored record (or a backup's copy of it) names the configured model."""
    return record is not None and (record.get("name"), record.get("dimension")) == (
        settings.embedding_model,
        settings.embedding_dimension,
    )
