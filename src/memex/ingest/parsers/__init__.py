"""The parser registry: which function reads which file extension, and the checks every upload goes through."""

from __future__ import annotations

import codecs
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePath

from memex.errors import MemexError, ParseError, UnsupportedFileType
from memex.ingest import detect
from memex.ingest.models import ParsedDocument
from memex.ingest.parsers import docx, html, json, markdown, org, pdf, rst, text

ParserFn = Callable[[bytes, str], ParsedDocument]


@dataclass(frozen=True, slots=True)
class _Format:
    parse: ParserFn
    mime: str
    # Text formats are decoded by us, so binary content must be refused before it reaches the parser.
    is_text: bool
    label: str


_MARKDOWN = _Format(markdown.parse, "text/markdown", True, "Markdown")
_TEXT = _Format(text.parse, "text/plain", True, "text")
_HTML = _Format(html.parse, "text/html", True, "HTML")

_FORMATS: dict[str, _Format] = {
    ".md": _MARKDOWN,
    ".markdown": _MARKDOWN,
    ".org": _Format(org.parse, "text/x-org", True, "Org"),
    ".txt": _TEXT,
    ".text": _TEXT,
    ".rst": _Format(rst.parse, "text/x-rst", True, "reStructuredText"),
    ".html": _HTML,
    ".htm": _HTML,
    ".json": _Format(json.parse, "application/json", True, "JSON"),
    ".pdf": _Format(pdf.parse, "application/pdf", False, "PDF"),
    ".docx": _Format(
        docx.parse,
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        False,
        "DOCX",
    ),
}

PARSERS: dict[str, ParserFn] = {ext: fmt.parse for ext, fmt in _FORMATS.items()}
SUPPORTED_EXTENSIONS: frozenset[str] = frozenset(_FORMATS)

_SIGNATURE_MISMATCH = {
    ".pdf": "content is not a PDF (no %PDF- header)",
    ".docx": "content is not a DOCX (not a ZIP archive)",
}


def extension_of(name: str) -> str:
    """The lower-case extension of a file name, with its dot ("" when there is none)."""
    return PurePath(name).suffix.lower()


def parser_for(name: str) -> ParserFn | None:
    """The parser for a file name's extension, or None when the type is not supported."""
    return PARSERS.get(extension_of(name))


def mime_for(name: str) -> str:
    """The MIME type Memex reports for a file name (application/octet-stream when unknown)."""
    fmt = _FORMATS.get(extension_of(name))
    return fmt.mime if fmt else "application/octet-stream"


def parse_bytes(data: bytes, name: str) -> ParsedDocument:
    """Parse a file's bytes with the parser for its extension; raises ParseError or UnsupportedFileType."""
    ext = extension_of(name)
    fmt = _FORMATS.get(ext)
    if fmt is None:
        supported = ", ".join(sorted(SUPPORTED_EXTENSIONS))
        shown = ext or "no extension"
        raise UnsupportedFileType(f"unsupported file type ({shown}); supported types: {supported}")
    if not data.removeprefix(codecs.BOM_UTF8).strip():
        raise ParseError("file is empty")
    if fmt.is_text and detect.looks_binary(data):
        raise ParseError("binary content, not text")
    if not detect.sniff_matches(data, ext):
        raise ParseError(_SIGNATURE_MISMATCH.get(ext, f"content does not match its {ext} extension"))
    try:
        document = fmt.parse(data, name)
    except (MemexError, MemoryError):
        raise  # a MemoryError is the sandbox's to report, as the memory limit it is
    except RecursionError as exc:
        raise ParseError(f"{fmt.label} is nested too deeply to parse") from exc
    except Exception as exc:
        # Parser libraries raise undocumented exceptions on hostile input; an upload must fail as a
        # ParseError with the cause attached, never as an internal error.
        raise ParseError(f"could not parse {fmt.label}: {type(exc).__name__}: {exc}") from exc
    if not any(section.text.strip() for section in document.sections):
        raise ParseError(_no_text_message(ext))
    return document


def _no_text_message(ext: str) -> str:
    if ext == ".pdf":
        return "no text found in the PDF (scanned pages need OCR, which Memex does not do)"
    return "no text found in the file"
