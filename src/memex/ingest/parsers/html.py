"""HTML: page chrome and scripts dropped, the rest split into sections at h1-h6 (selectolax, Lexbor)."""

from __future__ import annotations

import re
from pathlib import PurePath

from selectolax.lexbor import LexborHTMLParser, LexborNode

from memex.errors import ParseError
from memex.ingest.detect import decode_text
from memex.ingest.models import ParsedDocument, Section
from memex.ingest.parsers.outline import Outline

# Navigation, chrome and executable content repeat on every page or are not prose; indexing them adds noise.
DROPPED_TAGS = (
    "script",
    "style",
    "nav",
    "header",
    "footer",
    "aside",
    "noscript",
    "template",
    "svg",
    "form",
    "iframe",
    "object",
    "embed",
)
_HEADINGS = {f"h{level}": level for level in range(1, 7)}
_BLOCKS = frozenset(
    {"p", "div", "section", "article", "main", "blockquote", "li", "dd", "dt", "dl", "figure", "figcaption"}
    | {"address", "details", "summary", "center", "fieldset", "hr", "caption"}
)
_LISTS = frozenset({"ul", "ol"})
_META_NAMES = frozenset({"description", "author", "keywords"})
_SPACES = re.compile(r"\s+")
# Where text before the first heading is: used only while no heading has given a location.
_TOP = "top of the page"
# Lexbor checks the open elements at each tag, so reading N nested elements costs N²: 80,000 nested divs took
# 30 s. Browsers stop nesting at 512 levels (Blink); real pages stay far below that.
MAX_DEPTH = 512
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9:-]*)|<!--")
# Only a run of MAX_DEPTH opening tags with no closing tag between them can nest that deep: found at C speed
# (possessive, so it never backtracks), it sends the few files that have one to the exact count.
_OPENING_RUN = re.compile(r"<[A-Za-z][^<>]*+>[^<]*+(?:<[A-Za-z][^<>]*+>[^<]*+){" + str(MAX_DEPTH) + "}")
# Elements that never hold others, or that the parser closes by itself when a sibling opens.
_UNNESTED = frozenset(
    "area base br col embed hr img input link meta param source track wbr keygen "
    "p li dt dd option optgroup tr td th thead tbody tfoot colgroup caption rt rp html head body".split()
)
_RAW_TEXT = frozenset({"script", "style", "textarea", "title", "xmp", "plaintext", "noscript", "template"})


def parse(data: bytes, name: str) -> ParsedDocument:
    """Parse HTML: title from <title>, else the first h1, else the file stem; sections from headings."""
    source = decode_text(data)
    depth = nesting_depth(source, limit=MAX_DEPTH)
    if depth > MAX_DEPTH:
        raise ParseError(f"HTML is nested more than {MAX_DEPTH} elements deep; Memex reads up to {MAX_DEPTH}")
    tree = LexborHTMLParser(source)
    metadata = _metadata(tree)
    tree.strip_tags(list(DROPPED_TAGS), recursive=True)
    walker = _Walker()
    if tree.body is not None:
        walker.walk(tree.body)
    title_node = tree.css_first("title")
    first_h1 = tree.css_first("h1")
    title = (
        (_collapse(title_node.text()) if title_node else "")
        or (_collapse(first_h1.text()) if first_h1 else "")
        or PurePath(name).stem
    )
    return ParsedDocument(title=title, sections=walker.sections(), metadata=metadata)


class _Walker:
    """Walks the body in document order, turning runs of inline text into blocks of an Outline."""

    def __init__(self) -> None:
        self._outline = Outline()
        self._inline: list[str] = []
        self._headings_seen = 0

    def sections(self) -> tuple[Section, ...]:
        self._flush()
        return self._outline.sections()

    def walk(self, node: LexborNode) -> None:
        for child in node.iter(include_text=True):
            tag = child.tag or ""
            if tag == "-text":
                self._inline.append(_SPACES.sub(" ", child.text(deep=False)))
            elif tag == "br":
                self._inline.append("\n")
            elif tag in _HEADINGS:
                self._flush()
                self._headings_seen += 1
                # People read this beside the heading path: "section 3" is the third heading of the page.
                self._outline.heading(_HEADINGS[tag], _collapse(child.text()), f"section {self._headings_seen}")
            elif tag == "pre":
                self._flush()
                self._outline.add(child.text(), _TOP)
            elif tag == "table":
                self._flush()
                self._outline.add(_table_text(child), _TOP)
            elif tag in _LISTS:
                self._flush()
                self._outline.add("\n".join(_list_lines(child, depth=0)), _TOP)
            elif tag in _BLOCKS:
                self._flush()
                self.walk(child)
                self._flush()
            elif not tag.startswith("-"):
                self.walk(child)  # inline element: its text joins the current run

    def _flush(self) -> None:
        lines = (line.strip() for line in "".join(self._inline).split("\n"))
        self._outline.add("\n".join(line for line in lines if line), _TOP)
        self._inline = []


def nesting_depth(source: str, *, limit: int) -> int:
    """How deeply elements nest, estimated in one linear pass (stops counting once past `limit`)."""
    if limit == MAX_DEPTH and _OPENING_RUN.search(source) is None:
        return 0
    depth = deepest = 0
    position = 0
    while (match := _TAG.search(source, position)) is not None:
        position = match.end()
        if match.group(0) == "<!--":
            end = source.find("-->", position)
            position = len(source) if end < 0 else end + 3
            continue
        closing, tag = match.group(1), match.group(2).lower()
        if tag in _RAW_TEXT and not closing:
            end = _find_close(source, tag, position)
            position = len(source) if end < 0 else end
            continue
        if tag in _UNNESTED:
            continue
        depth = max(depth - 1, 0) if closing else depth + 1
        deepest = max(deepest, depth)
        if deepest > limit:
            break
    return deepest


def _find_close(source: str, tag: str, start: int) -> int:
    match = re.compile(f"</{tag}", re.IGNORECASE).search(source, start)
    return match.start() if match else -1


def _table_text(table: LexborNode) -> str:
    rows = []
    for row in table.css("tr"):
        cells = [_collapse(cell.text()) for cell in row.iter() if cell.tag in ("td", "th")]
        rows.append(" | ".join(cells))
    return "\n".join(row for row in rows if row.strip(" |"))


def _list_lines(list_node: LexborNode, *, depth: int) -> list[str]:
    lines: list[str] = []
    for item in list_node.iter():
        if item.tag != "li":
            continue
        own: list[str] = []
        nested: list[str] = []
        for part in item.iter(include_text=True):
            if part.tag in _LISTS:
                nested += _list_lines(part, depth=depth + 1)
            else:
                own.append(part.text())
        lines.append("  " * depth + "- " + _collapse("".join(own)))
        lines += nested
    return lines


def _metadata(tree: LexborHTMLParser) -> dict[str, object]:
    metadata: dict[str, object] = {}
    for meta in tree.css("meta[name]"):
        key = (meta.attributes.get("name") or "").lower()
        content = meta.attributes.get("content")
        if key in _META_NAMES and content:
            metadata[key] = content.strip()
    root = tree.css_first("html")
    lang = root.attributes.get("lang") if root is not None else None
    if lang:
        metadata["lang"] = lang
    return metadata


def _collapse(text: str) -> str:
    return _SPACES.sub(" ", text).strip()
