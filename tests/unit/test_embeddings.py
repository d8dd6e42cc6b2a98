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


class _Recording:
    """The model's session, recording the shape of each call."""

    def __init__(self, session: object) -> None:
        self.session = session
        self.shapes: list[tuple[int, ...]] = []

    def run(self, names: object, feeds: dict[str, np.ndarray]) -> object:
        self.shapes.append(feeds["input_ids"].shape)
        return self.session.run(names, feeds)  # type: ignore[attr-defined]


def test_the_batch_size_bounds_each_call_and_long_chunks_go_about_1024_tokens_a_call(embedder: LocalEmbedder) -> None:
    short = [f"note number {n}" for n in range(10)]
    long = [f"{n} " + "word " * 300 for n in range(6)]  # past the 256-token window
    texts = long[:3] + short + long[3:]

    by_default = _Recording(embedder._session)
    vectors = LocalEmbedder(by_default, batch_size=32).embed_documents(texts)  # type: ignore[arg-type]
    # The ten short notes in one call; the six long chunks four (4 × 256 = 1,024 tokens), then two.
    assert by_default.shapes == [(10, by_default.shapes[0][1]), (4, 256), (2, 256)]
    assert by_default.shapes[0][1] < 16

    at_most_three = _Recording(embedder._session)
    again = LocalEmbedder(at_most_three, batch_size=3).embed_documents(texts)  # type: ignore[arg-type]
    # Three notes, three, three, then the last note with the first two long chunks (3 × 256 ≤ 1,024), three, one.
    assert [rows for rows, _ in at_most_three.shapes] == [3, 3, 3, 3, 3, 1]
    # However the texts are split, each keeps its own vector, in the order given.
    assert np.allclose(vectors, again, atol=1e-4)
    assert np.allclose(vectors[3], embedder.embed_query(short[0]), atol=1e-4)


def test_the_model_threads_do_not_spin_between_calls(embedder: LocalEmbedder) -> None:
    # Spinning threads take the cores from PostgreSQL between query embeddings (see LocalEmbedder.load).
    options = embedder._session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
