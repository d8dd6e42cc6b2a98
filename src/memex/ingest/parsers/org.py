"""Org mode: one section per outline node, under the chain of its parent headings (orgparse)."""

from __future__ import annotations

import re
from pathlib import PurePath

import orgparse
from orgparse.node import OrgBaseNode, OrgNode, OrgRootNode

from memex.errors import ParseError
from memex.ingest.detect import decode_text
from memex.ingest.models import ParsedDocument, Section

# "#+TITLE: x" keywords and "#+BEGIN_SRC" block markers are syntax, not prose. Only blanks and tabs may
# lead: `\s` would also match newlines and make a file of empty lines backtrack quadratically.
_KEYWORD_LINE = re.compile(r"^[ \t]*#\+")
_KEYWORD = re.compile(r"^[ \t]*#\+(\w+):[ \t]*(.*?)[ \t]*$", re.MULTILINE)


def parse(data: bytes, name: str) -> ParsedDocument:
    """Parse an Org file: #+TITLE as title, #+KEYWORDs as metadata, one section per heading."""
    source = decode_text(data).replace("\r\n", "\n")
    try:
        root = orgparse.loads(source)
        sections = _sections(root)
    except (ValueError, IndexError, KeyError) as exc:
        raise ParseError(f"could not parse Org outline: {exc}") from exc
    metadata: dict[str, object] = {key.lower(): value for key, value in _KEYWORD.findall(root.body) if value}
    title = str(metadata.get("title") or "").strip() or PurePath(name).stem
    return ParsedDocument(
        title=title,
        sections=tuple(section for section in sections if section.text),
        metadata=metadata,
    )


def _sections(root: OrgRootNode) -> list[Section]:
    """One section per node, in document order. Heading paths come from a stack of open headings: orgparse's
    own `parent` scans back over every earlier node, which is quadratic in the number of headings."""
    sections: list[Section] = []
    open_headings: list[tuple[int, str]] = []
    for node in root:
        if isinstance(node, OrgNode):
            while open_headings and open_headings[-1][0] >= node.level:
                open_headings.pop()
            open_headings.append((node.level, node.heading))
        sections.append(_section(node, tuple(heading for _, heading in open_headings)))
    return sections


def _section(node: OrgBaseNode, heading_path: tuple[str, ...]) -> Section:
    body_lines = node.get_body(format="plain").split("\n")
    kept = [(offset, line.rstrip()) for offset, line in enumerate(body_lines) if not _KEYWORD_LINE.match(line)]
    text = "\n".join(line for _, line in kept).strip("\n")
    if isinstance(node, OrgRootNode):
        # The preamble has no heading line; point at its first line of prose instead.
        first = next((offset for offset, line in kept if line.strip()), 0)
        return Section(text, (), f"line {node.linenumber + first}")
    return Section(text, heading_path, f"line {node.linenumber}")
