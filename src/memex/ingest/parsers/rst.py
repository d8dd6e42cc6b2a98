"""reStructuredText: sections under their title chains, docinfo as metadata (docutils, sandboxed)."""

from __future__ import annotations

import io
from pathlib import PurePath

import docutils
import docutils.utils
from docutils import nodes
from docutils.core import publish_doctree

from memex.errors import ParseError
from memex.ingest.detect import decode_text
from memex.ingest.models import ParsedDocument
from memex.ingest.parsers.outline import Outline

# Uploaded files are untrusted: no reading other files (include, csv-table :file:), no raw HTML passthrough,
# no docutils.conf from the server's disk, and problems never halt parsing or print to stderr.
_SETTINGS: dict[str, object] = {
    "file_insertion_enabled": False,
    "raw_enabled": False,
    "_disable_config": True,
    "report_level": 5,
    "halt_level": 5,
    "traceback": True,
}
_NOT_TEXT = (
    nodes.title,
    nodes.docinfo,
    nodes.system_message,
    nodes.comment,
    nodes.target,
    nodes.substitution_definition,
    nodes.raw,
    nodes.decoration,
)


def parse(data: bytes, name: str) -> ParsedDocument:
    """Parse reStructuredText: document title as title, one section per rST section."""
    source = decode_text(data)
    try:
        document = publish_doctree(source, settings_overrides={**_SETTINGS, "warning_stream": io.StringIO()})
    except (docutils.utils.SystemMessage, docutils.ApplicationError) as exc:
        raise ParseError(f"could not parse reStructuredText: {exc}") from exc
    outline = Outline()
    title = ""
    first = document.children[0] if document.children else None
    if isinstance(first, nodes.title):
        # docutils promoted a lone top-level section to the document title: keep it atop every heading path.
        title = first.astext().strip()
        outline.heading(0, title, _title_location(first))
    _walk(document, outline, depth=0)
    return ParsedDocument(
        title=title or _first_section_title(document) or PurePath(name).stem,
        sections=outline.sections(),
        metadata=_docinfo(document),
    )


def _walk(parent: nodes.Element, outline: Outline, *, depth: int) -> None:
    for child in parent.children:
        if isinstance(child, nodes.section):
            heading = child.children[0] if child.children else None
            if isinstance(heading, nodes.title):
                outline.heading(depth + 1, heading.astext().strip(), _title_location(heading))
            _walk(child, outline, depth=depth + 1)
        elif isinstance(child, nodes.Element) and not isinstance(child, _NOT_TEXT):
            outline.add(_block_text(child), _location(child))
        elif isinstance(child, nodes.Text):
            outline.add(child.astext())


def _block_text(node: nodes.Element) -> str:
    if isinstance(node, nodes.table):
        return "\n".join(" | ".join(entry.astext() for entry in row.children) for row in node.findall(nodes.row))
    if isinstance(node, (nodes.bullet_list, nodes.enumerated_list)):
        return "\n".join(f"- {item.astext()}" for item in node.children)
    return str(node.astext())


def _title_location(title: nodes.Element) -> str:
    # docutils reports a title on the line of its underline; the text sits one line above it.
    return f"line {title.line - 1}" if title.line else ""


def _location(node: nodes.Element) -> str:
    for candidate in node.findall(nodes.Element):
        if candidate.line:
            return f"line {candidate.line}"
    return ""


def _first_section_title(document: nodes.document) -> str:
    section = document.next_node(nodes.section)
    heading = section.next_node(nodes.title) if section is not None else None
    return str(heading.astext()).strip() if heading is not None else ""


def _docinfo(document: nodes.document) -> dict[str, object]:
    docinfo = document.next_node(nodes.docinfo)
    metadata: dict[str, object] = {}
    for item in docinfo.children if docinfo is not None else ():
        if isinstance(item, nodes.field):
            field_name, field_body = item.children[0], item.children[-1]
            metadata[field_name.astext().strip().lower()] = field_body.astext().strip()
        elif isinstance(item, nodes.Element):
            metadata[item.tagname] = item.astext().strip()
    return metadata
