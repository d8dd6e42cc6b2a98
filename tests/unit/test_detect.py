"""Content sniffing: binary versus text, decoding, and signatures of binary formats."""

from __future__ import annotations

import codecs
import random
from pathlib import Path

from memex.ingest.detect import SNIFF_BYTES, decode_text, looks_binary, sniff_matches

DATA = Path(__file__).resolve().parents[1] / "data"


def test_plain_ascii_and_utf8_are_text() -> None:
    assert not looks_binary(b"# Notes\n\nKey rotation every 90 days.\n")
    assert not looks_binary("Größe café naïve 東京\n".encode())


def test_sample_text_files_are_text() -> None:
    for name in ("sample.md", "sample.org", "sample.txt", "sample.rst", "sample.html", "sample.json"):
        assert not looks_binary((DATA / name).read_bytes()), name


def test_nul_bytes_mean_binary() -> None:
    assert looks_binary(b"hello\x00world")
    assert looks_binary((DATA / "binary.md").read_bytes())


def test_random_bytes_without_nuls_are_binary() -> None:
    noise = bytes(b or 1 for b in random.Random(7).randbytes(4096))
    assert looks_binary(noise)


def test_mostly_control_characters_is_binary() -> None:
    assert looks_binary(b"\x01\x02\x03\x04\x05\x06abc\x07\x08\x0e\x0f")


def test_cp1252_text_is_not_binary() -> None:
    assert not looks_binary("Größe café naïve \u2013 “quoted”".encode("cp1252"))


def test_utf16_with_bom_is_text_despite_nuls() -> None:
    assert not looks_binary("Größe café naïve 東京".encode("utf-16"))


def test_multibyte_character_cut_at_the_sniff_window_is_still_text() -> None:
    data = b"a" * (SNIFF_BYTES - 1) + "é".encode() + b"tail"
    assert not looks_binary(data)


def test_decode_strips_utf8_bom() -> None:
    assert decode_text(codecs.BOM_UTF8 + "café".encode()) == "café"


def test_decode_falls_back_to_cp1252() -> None:
    assert decode_text("Größe \u2013 café".encode("cp1252")) == "Größe \u2013 café"


def test_decode_falls_back_to_latin1_when_cp1252_cannot() -> None:
    # 0x81 is undefined in cp1252 but a C1 control in latin-1.
    assert decode_text(b"caf\xe9 \x81") == "café \x81"


def test_decode_utf16_with_bom() -> None:
    assert decode_text("東京".encode("utf-16")) == "東京"


def test_pdf_signature_allows_leading_junk_within_1kb() -> None:
    assert sniff_matches(b"%PDF-1.7\n...", ".pdf")
    assert sniff_matches(b"\r\n  junk from a mail gateway\n%PDF-1.4\n", ".PDF")
    assert not sniff_matches(b" " * 2000 + b"%PDF-1.4", ".pdf")
    assert not sniff_matches(b"just some text", ".pdf")


def test_docx_must_be_a_zip() -> None:
    assert sniff_matches((DATA / "sample.docx").read_bytes(), ".docx")
    assert not sniff_matches(b"%PDF-1.4", ".docx")


def test_formats_without_signature_always_match() -> None:
    assert sniff_matches(b"anything", ".md")
