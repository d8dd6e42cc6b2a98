"""Content sniffing: text or binary, which encoding, and whether bytes match the format their name claims."""

from __future__ import annotations

import codecs

SNIFF_BYTES = 8192
# Share of control characters above which "text" is really a binary format that happens to decode.
_CONTROL_RATIO = 0.10
_TEXT_CONTROLS = frozenset("\t\n\r\f\v\x1b")
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
_PDF_MAGIC = b"%PDF-"
_PDF_MAGIC_WINDOW = 1024
_ZIP_MAGIC = b"PK\x03\x04"


def looks_binary(data: bytes) -> bool:
    """True when the first 8 KB of `data` are not text in any encoding we read."""
    head = data[:SNIFF_BYTES]
    if head.startswith(_UTF16_BOMS):
        # UTF-16 text is full of NULs by design; judge it after decoding instead.
        sample = _decode_prefix(head, "utf-16")
        return sample is None or _mostly_controls(sample)
    if b"\x00" in head:
        return True
    sample = _decode_prefix(head, "utf-8-sig")
    if sample is None:
        sample = _decode_prefix(head, "cp1252")
    return sample is None or _mostly_controls(sample)


def decode_text(data: bytes) -> str:
    """Decode text bytes: BOM-marked UTF-8/UTF-16, else UTF-8, else cp1252, else latin-1 (never fails)."""
    if data.startswith(_UTF16_BOMS):
        return data.decode("utf-16", errors="replace")
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def sniff_matches(data: bytes, ext: str) -> bool:
    """True when `data` starts like the binary format `ext` names; formats without a signature always match."""
    ext = ext.lower()
    if ext == ".pdf":
        # Readers accept junk (mail headers, whitespace) before the header, and so do we.
        return _PDF_MAGIC in data[:_PDF_MAGIC_WINDOW]
    if ext == ".docx":
        return data.startswith(_ZIP_MAGIC)
    return True


def _decode_prefix(head: bytes, encoding: str) -> str | None:
    # Incremental decoding tolerates a multi-byte character cut in half at the end of the sniff window.
    decoder = codecs.getincrementaldecoder(encoding)()
    try:
        return decoder.decode(head, final=len(head) < SNIFF_BYTES)
    except UnicodeDecodeError:
        return None


def _mostly_controls(sample: str) -> bool:
    if not sample:
        return False
    controls = sum(1 for ch in sample if _is_control(ch))
    return controls / len(sample) > _CONTROL_RATIO


def _is_control(ch: str) -> bool:
    code = ord(ch)
    return (code < 0x20 and ch not in _TEXT_CONTROLS) or code == 0x7F or 0x80 <= code <= 0x9F
