"""PDF: one section per page with its text layer (pypdfium2)."""

from __future__ import annotations

import threading
import unicodedata
from pathlib import PurePath

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from memex.errors import ParseError
from memex.ingest.models import ParsedDocument, Section

# PDFium is not thread-safe and parsing runs in a thread pool: one document at a time per process.
_PDFIUM_LOCK = threading.Lock()
_METADATA_KEYS = ("Title", "Author", "Subject", "Keywords", "Creator", "Producer", "CreationDate", "ModDate")
_KEEP_CONTROLS = frozenset("\n\t")
_LOAD_ERRORS = {
    pdfium_c.FPDF_ERR_FORMAT: "not a valid PDF structure (damaged or truncated file)",
    pdfium_c.FPDF_ERR_FILE: "the file could not be read",
}


def parse(data: bytes, name: str) -> ParsedDocument:
    """Parse a PDF into one section per page ("page N"); title from its metadata, else the file stem."""
    with _PDFIUM_LOCK:
        document = _open(data)
        try:
            info = document.get_metadata_dict(skip_empty=True)
            sections = tuple(_page_section(document, index) for index in range(len(document)))
        finally:
            document.close()
    metadata: dict[str, object] = {key.lower(): info[key] for key in _METADATA_KEYS if key in info}
    metadata["pages"] = len(sections)
    title = str(info.get("Title", "")).strip() or PurePath(name).stem
    return ParsedDocument(
        title=title,
        sections=tuple(section for section in sections if section.text),
        metadata=metadata,
    )


def _open(data: bytes) -> pdfium.PdfDocument:
    try:
        return pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        if exc.err_code == pdfium_c.FPDF_ERR_PASSWORD:
            raise ParseError("PDF is encrypted (password protected)") from exc
        if exc.err_code == pdfium_c.FPDF_ERR_SECURITY:
            raise ParseError("PDF is encrypted with an unsupported security scheme") from exc
        raise ParseError(f"corrupt PDF: {_LOAD_ERRORS.get(exc.err_code, 'PDFium could not load it')}") from exc


def _page_section(document: pdfium.PdfDocument, index: int) -> Section:
    page = document[index]
    try:
        textpage = page.get_textpage()
        try:
            raw = textpage.get_text_range()
        finally:
            textpage.close()
    except pdfium.PdfiumError as exc:
        raise ParseError(f"corrupt PDF: page {index + 1} could not be read") from exc
    finally:
        page.close()
    return Section(_clean(raw), (), f"page {index + 1}")


def _clean(raw: str) -> str:
    text = raw.replace("\r\n", "\n").replace("\r", "\n")
    # PDFium marks soft hyphens and unknown glyphs with control characters; they would pollute search.
    kept = "".join(ch for ch in text if ch in _KEEP_CONTROLS or unicodedata.category(ch) != "Cc")
    return "\n".join(line.rstrip() for line in kept.split("\n")).strip()
