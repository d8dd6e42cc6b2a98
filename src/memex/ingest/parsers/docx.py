"""Word DOCX: sections from Title and Heading 1-9 paragraph styles, tables as rows of cells (python-docx)."""

from __future__ import annotations

import io
import re
import zipfile
import zlib
from pathlib import PurePath

import docx
from docx.document import Document
from docx.opc.exceptions import OpcError
from docx.oxml.ns import qn
from docx.table import Table
from docx.text.paragraph import Paragraph
from lxml import etree

from memex.errors import ParseError
from memex.ingest.models import ParsedDocument
from memex.ingest.parsers.outline import Outline

# A DOCX is a zip: a few MB can inflate to gigabytes of XML. Real documents stay far below this.
MAX_UNCOMPRESSED_BYTES = 256 * 1024 * 1024
_HEADING_STYLE = re.compile(r"^heading ([1-9])$", re.IGNORECASE)
_TITLE_LEVEL = 0
_CORE_FIELDS = ("author", "subject", "keywords", "category", "comments")
_DOCX_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, KeyError, ValueError, OpcError, etree.LxmlError)


def parse(data: bytes, name: str) -> ParsedDocument:
    """Parse a DOCX: title from its properties, Title paragraph or first heading; sections under headings."""
    _refuse_zip_bomb(data)
    try:
        document = docx.Document(io.BytesIO(data))
        outline = Outline()
        styled_title, first_heading = _walk(document, outline, _StyleNames(document))
        props = document.core_properties
        metadata: dict[str, object] = {
            field: str(value).strip() for field in _CORE_FIELDS if (value := getattr(props, field, None))
        }
        title = (props.title or "").strip() or styled_title or first_heading or PurePath(name).stem
    except _DOCX_ERRORS as exc:
        raise ParseError(f"corrupt or truncated DOCX: {_reason(exc)}") from exc
    return ParsedDocument(title=title, sections=outline.sections(), metadata=metadata)


def _refuse_zip_bomb(data: bytes) -> None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            expanded = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, EOFError, ValueError) as exc:
        raise ParseError(f"corrupt or truncated DOCX: {exc}") from exc
    if expanded > MAX_UNCOMPRESSED_BYTES:
        limit_mb = MAX_UNCOMPRESSED_BYTES // (1024 * 1024)
        raise ParseError(f"DOCX expands to more than {limit_mb} MB when unzipped; refusing it")


def _reason(exc: Exception) -> str:
    # KeyError's str() wraps its message in quotes; users should read the message itself.
    if isinstance(exc, KeyError) and exc.args:
        return str(exc.args[0])
    return str(exc) or type(exc).__name__


class _StyleNames:
    """Paragraph style names by style id, read once. python-docx's `paragraph.style` searches every style of
    the document for each paragraph, which makes a file with thousands of styles take minutes."""

    def __init__(self, document: Document) -> None:
        self._names: dict[str, str] = {}
        self._default = ""
        for style in document.styles.element.iterchildren(qn("w:style")):
            if style.get(qn("w:type")) != "paragraph":
                continue
            name_element = style.find(qn("w:name"))
            name = (name_element.get(qn("w:val")) if name_element is not None else None) or ""
            style_id = style.get(qn("w:styleId"))
            if style_id is not None:
                self._names.setdefault(style_id, name)
            if style.get(qn("w:default")) in ("1", "true", "on") and not self._default:
                self._default = name

    def of(self, paragraph: Paragraph) -> str:
        """The name of a paragraph's style (the default paragraph style when it names none, or an unknown one)."""
        style_id = paragraph._p.style
        return self._names.get(style_id, self._default) if style_id is not None else self._default


def _walk(document: Document, outline: Outline, styles: _StyleNames) -> tuple[str, str]:
    """Feed the body to the outline; return the Title-style paragraph's text and the first heading's."""
    styled_title = first_heading = ""
    paragraphs = tables = 0
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            tables += 1
            outline.add(_table_text(block), f"table {tables}")
            continue
        paragraphs += 1
        where = f"paragraph {paragraphs}"
        text = block.text.strip()
        level = _heading_level(styles.of(block))
        if level is None or not text:
            outline.add(block.text, where)
            continue
        if level == _TITLE_LEVEL:
            styled_title = styled_title or text
        else:
            first_heading = first_heading or text
        outline.heading(level, text, where)
    return styled_title, first_heading


def _heading_level(style_name: str) -> int | None:
    if style_name.lower() == "title":
        return _TITLE_LEVEL
    match = _HEADING_STYLE.match(style_name)
    return int(match.group(1)) if match else None


def _table_text(table: Table) -> str:
    rows = []
    for row in table.rows:
        cells: list[str] = []
        for cell in row.cells:
            text = " ".join(cell.text.split())
            # Merged cells come back once per grid column they span; keep one copy.
            if text and (not cells or cells[-1] != text):
                cells.append(text)
        if cells:
            rows.append(" | ".join(cells))
    return "\n".join(rows)
