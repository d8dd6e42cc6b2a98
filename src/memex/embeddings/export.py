"""One-time offline export of the bundled model to ONNX, checked against the PyTorch original.

Run as `python -m memex.embeddings.export OUT.onnx`: in its own process, so the serving process never loads torch.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

from memex.embeddings.model_files import bundled_model_dir

_INPUTS = ["input_ids", "attention_mask", "token_type_ids"]
_PARITY_TEXTS = ["how do I rotate keys", "Backups are verified by restoring them into a scratch database. " * 6]


def export(out: Path) -> None:
    import numpy as np
    import torch
    from transformers import AutoModel, AutoTokenizer

    model_dir = str(bundled_model_dir())
    # Eager attention traces to plain ops; the SDPA path bakes a padding-dependent branch into the graph.
    model = AutoModel.from_pretrained(model_dir, attn_implementation="eager").eval()
    tok = AutoTokenizer.from_pretrained(model_dir)

    class LastHidden(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(
            self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
        ) -> torch.Tensor:
            out = self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
            hidden: torch.Tensor = out.last_hidden_state
            return hidden

    sample = tok(_PARITY_TEXTS, padding=True, return_tensors="pt")
    # Before exporting: tracing leaves the module in a state that no longer computes the same thing.
    with torch.no_grad():
        reference = LastHidden()(*(sample[name] for name in _INPUTS)).numpy()
    tmp = out.with_suffix(".tmp")
    out.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            LastHidden(),
            tuple(sample[name] for name in _INPUTS),
            str(tmp),
            input_names=_INPUTS,
            output_names=["last_hidden_state"],
            dynamic_axes={name: {0: "batch", 1: "sequence"} for name in [*_INPUTS, "last_hidden_state"]},
            opset_version=17,
            dynamo=False,
        )

    import onnxruntime as ort

    def parity(path: Path) -> float:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = session.run(None, {name: sample[name].numpy() for name in _INPUTS})[0]
        mask = sample["attention_mask"].numpy()[..., None]
        pooled = [(h * mask).sum(axis=1) / mask.sum(axis=1) for h in (got, reference)]
        cosine = (pooled[0] * pooled[1]).sum(axis=1) / (
            np.linalg.norm(pooled[0], axis=1) * np.linalg.norm(pooled[1], axis=1)
        )
        return float(cosine.min())

    if parity(tmp) < 0.99999:
        tmp.unlink()
        raise SystemExit("ONNX export does not match the PyTorch model")
    fused = fuse(tmp)
    tmp.unlink()
    if parity(fused) < 0.99999:
        fused.unlink()
        raise SystemExit("the fused ONNX graph does not match the PyTorch model")
    fused.replace(out)  # atomic: a concurrent reader sees no file or the whole file


def fuse(plain: Path) -> Path:
    """The graph with BERT's attention, embedding + layer norm, bias + GELU and skip + layer norm each one kernel.

    ONNX Runtime's own session-time fusions leave attention as separate MatMul, Softmax, Transpose and Add nodes;
    its transformer optimizer (offline, needs the `onnx` package, hence here) fuses them: about a third less time
    outside the matrix products (benchmarks/ingest.py's share of the GEMM limit).
    """
    from onnxruntime.transformers import optimizer
    from onnxruntime.transformers.fusion_options import FusionOptions

    from memex.embeddings.model_files import DIMENSION

    model = optimizer.optimize_model(
        str(plain),
        model_type="bert",
        num_heads=12,
        hidden_size=DIMENSION,
        optimization_options=FusionOptions("bert"),
        opt_level=0,
        use_gpu=False,
    )
    counts = model.get_fused_operator_statistics()
    if counts.get("Attention", 0) != 6:
        raise SystemExit(f"the transformer optimizer did not fuse the six attention layers: {counts}")
    fused = plain.with_suffix(".fused")
    model.save_model_to_file(str(fused))
    return fused


if __name__ == "__main__":
    export(Path(sys.argv[1]))
