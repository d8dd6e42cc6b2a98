"""Org mode: one section per outline node, under the chain of its parent headings (orgparse)."""

from __future__ import annotations

import re
from pathlib import PurePath

import orgparse
from orgparse.node import OrgBaseNode, OrgRootNode

from memex.errors import ParseError
from memex.ingest.detect import decode_text
from memex.ingest.models import ParsedDocument, Section

# "#+TITLE: x" keywords and "#+BEGIN_SRC" block markers are syntax, not prose.
_KEYWORD_LINE = re.compile(r"^\s*#\+")
_KEYWORD = re.compile(r"^\s*#\+(\w+):\s*(.*?)\s*$", re.MULTILINE)


def parse(data: bytes, name: str) -> ParsedDocument:
    """Parse an Org file: #+TITLE as title, #+KEYWORDs as metadata, one section per heading."""
    source = decode_text(data).replace("\r\n", "\n")
    try:
        root = orgparse.loads(source)
        sections = [_section(node) for node in root]
    except (ValueError, IndexError, KeyError) as exc:
        raise ParseError(f"could not parse Org outline: {exc}") from exc
    metadata: dict[str, object] = {key.lower(): value for key, value in _KEYWORD.findall(root.body) if value}
    title = str(metadata.get("title") or "").strip() or PurePath(name).stem
    return ParsedDocument(
        title=title,
        sections=tuple(section for section in sections if section.text),
        metadata=metadata,
    )


def _section(node: OrgBaseNode) -> Section:
    body_lines = node.get_body(format="plain").split("\n")
    kept = [(offset, line.rstrip()) for offset, line in enumerate(body_lines) if not _KEYWORD_LINE.match(line)]
    text = "\n".join(line for _, line in kept).strip("\n")
    if isinstance(node, OrgRootNode):
        # The preamble has no heading line; point at its first line of prose instead.
        first = next((offset for offset, line in kept if line.strip()), 0)
        return Section(text, (), f"line {node.linenumber + first}")
    return Section(text, _heading_path(node), f"line {node.linenumber}")


def _heading_path(node: OrgBaseNode) -> tuple[str, ...]:
    path: list[str] = []
    current: OrgBaseNode | None = node
    while current is not None and not isinstance(current, OrgRootNode):
        path.append(current.heading)
        current = current.parent
    return tuple(reversed(path))
