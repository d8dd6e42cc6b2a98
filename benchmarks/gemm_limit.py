"""The hardware's limit for the embedding model: its own matrix products, timed alone on this machine.

all-MiniLM-L6-v2 is 6 layers of hidden size 384, 12 heads of 32, feed-forward 1536. Almost all of its arithmetic
is matrix products: per token and layer Q, K, V and the output projection (4 × 384 × 384), the feed-forward pair
(2 × 384 × 1536), and per pair of tokens in a chunk the attention scores and their weighted sum (2 × 384). The
limit is what ONNX Runtime's own MatMul (the same library and thread count the model runs on) reaches on exactly
those shapes, with nothing else in the graph: no softmax, layer norms, GELU, padding, tokenizing or pooling.
`share = raw rate / limit` says how much of the hardware the embedding path uses.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper

HIDDEN, HEADS, FFN, LAYERS = 384, 12, 1536, 6
HEAD = HIDDEN // HEADS


def flops_per_chunk(tokens: int) -> float:
    """Multiply-adds × 2 of the model's matrix products for one chunk of `tokens` tokens (no padding)."""
    linear = 2 * tokens * (4 * HIDDEN * HIDDEN + 2 * HIDDEN * FFN)
    attention = 2 * 2 * tokens * tokens * HIDDEN
    return float(LAYERS * (linear + attention))


def _matmul_session(a_shape: Sequence[int], b_shape: Sequence[int]) -> ort.InferenceSession:
    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, list(a_shape))
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, list(b_shape))
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["y"])], "gemm", [a, b], [out])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = os.cpu_count() or 1
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _seconds(a_shape: Sequence[int], b_shape: Sequence[int], *, repeats: int) -> float:
    """Best-of-`repeats` seconds of one MatMul of these shapes (best: the machine's noise only ever adds)."""
    session = _matmul_session(a_shape, b_shape)
    rng = np.random.default_rng(0)
    feeds = {
        "a": rng.standard_normal(a_shape, dtype=np.float32),
        "b": rng.standard_normal(b_shape, dtype=np.float32),
    }
    session.run(None, feeds)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        session.run(None, feeds)
        best = min(best, time.perf_counter() - started)
    return best


def measure(*, batch: int = 32, tokens: int = 256, repeats: int = 5) -> dict[str, float]:
    """GEMM throughput on one batch of `batch` chunks of `tokens` tokens: every product of one layer, timed alone."""
    rows = batch * tokens
    shapes = [
        # Q, K, V and the output projection: 4 of [rows, 384] × [384, 384].
        ((rows, HIDDEN), (HIDDEN, HIDDEN), 4),
        ((rows, HIDDEN), (HIDDEN, FFN), 1),
        ((rows, FFN), (FFN, HIDDEN), 1),
        # Attention, per chunk and head: scores [t, 32] × [32, t] and the weighted sum [t, t] × [t, 32].
        ((batch * HEADS, tokens, HEAD), (batch * HEADS, HEAD, tokens), 1),
        ((batch * HEADS, tokens, tokens), (batch * HEADS, tokens, HEAD), 1),
    ]
    seconds = sum(n * _seconds(a, b, repeats=repeats) for a, b, n in shapes) * LAYERS
    flops = batch * flops_per_chunk(tokens)
    return {"gflops": flops / seconds / 1e9, "batch": batch, "tokens": tokens}


def rates_by_batch(*, batches: Sequence[int] = (4, 8, 32), tokens: int = 256, repeats: int = 5) -> dict[int, float]:
    """GFLOP/s by batch size. The limit is the best of them: the hardware's, not our batching's (smaller batches
    keep a layer's activations in cache, larger ones give MLAS bigger products)."""
    return {b: measure(batch=b, tokens=tokens, repeats=repeats)["gflops"] for b in batches}


def limit(token_counts: Sequence[int], gflops: float) -> dict[str, float]:
    """The chunks/s the measured GEMM rate allows for chunks of these (unpadded) lengths."""
    mean_flops = float(np.mean([flops_per_chunk(min(n, 256)) for n in token_counts]))
    return {"flops_per_chunk": mean_flops, "limit_chunks_per_s": gflops * 1e9 / mean_flops}
