"""Text from documents and file names made safe to show: no terminal control sequences, no bidi overrides.

A document can carry escape sequences that clear a terminal or colour a fake warning, and a file name can carry
right-to-left overrides that show `invoice‮fdp.exe` as `invoiceexe.pdf`. What people read in the CLI goes through
`for_terminal`; names the web UI shows lose the same bidi controls in `ui.js` (`BIDI_CONTROLS` there mirrors this).
JSON output needs neither: it escapes control characters itself.
"""

from __future__ import annotations

import re

# Embeddings and overrides (U+202A–U+202E) and isolates (U+2066–U+2069).
BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")
# ESC sequences: CSI (ESC [ … final byte), OSC / DCS / SOS / PM / APC strings (ended by BEL or ESC \), then any other
# ESC with the one character it introduces.
_ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b[\]PX^_].*?(?:\x07|\x1b\\|$)"
    r"|\x1b[\s\S]?",
    re.S,
)
# C0 controls but tab and newline, DEL, and C1 controls (U+0080–U+009F; U+009B alone is a CSI on some terminals).
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def without_bidi_controls(text: str) -> str:
    """`text` with its bidi embedding, override and isolate characters removed."""
    return BIDI_CONTROLS.sub("", text)


def for_terminal(text: str) -> str:
    """`text` fit to print on a terminal: escape sequences, control characters and bidi controls removed."""
    return without_bidi_controls(_CONTROLS.sub("", _ESCAPES.sub("", text)))
