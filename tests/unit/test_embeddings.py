import numpy as np

from memex.embeddings.cache import CachedEmbedder
from memex.embeddings.local import LocalEmbedder
from memex.embeddings.model_files import bundled_model_dir

TEXTS = [
    "how do I rotate keys",
    "Backups are verified by restoring them into a scratch database.",
    "Größe café naïve 東京 " * 3,
    "x " * 400,  # longer than the model's 256-token window: truncated like the reference
]


def test_onnx_matches_sentence_transformers(embedder: LocalEmbedder) -> None:
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(bundled_model_dir()), device="cpu").encode(TEXTS, normalize_embeddings=True)
    ours = embedder.embed_documents(TEXTS)
    cosine = (ours * reference).sum(axis=1)
    assert cosine.min() > 0.9999, cosine


def test_vectors_are_unit_length_and_batch_order_is_kept(embedder: LocalEmbedder) -> None:
    batch = embedder.embed_documents(TEXTS)
    assert batch.shape == (len(TEXTS), 384)
    assert np.allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)
    single = np.stack([embedder.embed_query(t) for t in TEXTS])
    assert np.allclose(batch, single, atol=1e-4)


def test_query_cache_skips_the_model(embedder: LocalEmbedder) -> None:
    cached = CachedEmbedder(embedder, size=2)
    first = cached.embed_query("alpha")
    assert cached.embed_query("alpha") is first
    cached.embed_query("beta")
    cached.embed_query("gamma")  # evicts alpha, the least recently used
    cached.embed_query("alpha")
    assert (cached.hits, cached.misses) == (1, 4)
