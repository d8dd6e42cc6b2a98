"""Property-based fuzzing of every parser: any input gives a ParsedDocument or our ParseError, within the limits."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memex.errors import ParseError, UnsupportedFileType
from memex.ingest.models import ParsedDocument
from memex.ingest.parsers import SUPPORTED_EXTENSIONS, parse_bytes
from memex.ingest.sandbox import ParseLimits, ParsePool
from memex.settings import Settings
from tests.conftest import DATA

# Pieces of each format's syntax, so that examples reach the parsers' interesting paths, not only plain text.
_FRAGMENTS: dict[str, list[str]] = {
    ".md": [
        "# ",
        "## ",
        "\n",
        "\n\n",
        "---\n",
        "title: x\n",
        "* ",
        "1. ",
        "> ",
        "```",
        "|a|b|\n",
        "|-|-|\n",
        "[",
        "](",
    ],
    ".org": [
        "* ",
        "** ",
        "\n",
        "#+TITLE: ",
        "#+BEGIN_SRC\n",
        "#+END_SRC\n",
        ":PROPERTIES:\n",
        ":END:\n",
        "<2024-01-01>",
    ],
    ".txt": ["\n", "\n\n", " ", "\t", "\r\n", "é", "\u2028"],
    ".rst": ["Title\n=====\n", "\n", "\n\n", ".. ", ":field: x\n", "* ", "- ", "``", "`", "::\n", "   ", "+--+\n"],
    ".html": ["<h1>", "</h1>", "<p>", "</p>", "<div>", "</div>", "<ul><li>", "</ul>", "<table><tr><td>", "<br>"],
    ".json": ["{", "}", "[", "]", '"title"', ":", ",", '"x"', "1", "null", "true", "\n"],
}
_FRAGMENTS[".html"] += ["<script>", "</script>", "<!--", "-->", "<title>", "</title>", "<pre>", "&amp;"]
_EXAMPLES = 40
_SANDBOXED_EXAMPLES = 10
_LIMIT_WORDS = ("MEMEX_PARSE_", "MEMEX_MAX_DOCUMENT_CHARS", "crashed", "stopped on this file")


def _text_of(ext: str) -> st.SearchStrategy[bytes]:
    pieces = st.one_of(st.sampled_from(_FRAGMENTS[ext]), st.text(max_size=12))
    encoding = st.sampled_from(["utf-8", "utf-8", "utf-16", "cp1252"])
    return st.tuples(st.lists(pieces, max_size=80).map("".join), encoding).map(
        lambda pair: pair[0].encode(pair[1], errors="replace")
    )


def _mutated(sample: bytes) -> st.SearchStrategy[bytes]:
    """The sample with a few bytes changed, and perhaps cut short."""
    edits = st.lists(st.tuples(st.integers(0, len(sample) - 1), st.integers(0, 255)), max_size=8)
    cut = st.integers(1, len(sample))

    def apply(args: tuple[list[tuple[int, int]], int]) -> bytes:
        changed = bytearray(sample)
        for position, value in args[0]:
            changed[position] = value
        return bytes(changed[: args[1]])

    return st.tuples(edits, cut).map(apply)


def _docx_with(body: st.SearchStrategy[str]) -> st.SearchStrategy[bytes]:
    """sample.docx with its document body replaced by generated (often invalid) WordprocessingML."""
    with zipfile.ZipFile(DATA / "sample.docx") as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    namespace = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'

    def build(xml: str) -> bytes:
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as archive:
            for name, data in members.items():
                if name == "word/document.xml":
                    data = f"<w:document {namespace}><w:body>{xml}</w:body></w:document>".encode()
                archive.writestr(name, data)
        return out.getvalue()

    return body.map(build)


_DOCX_PIECES = ["<w:p>", "</w:p>", "<w:r><w:t>", "</w:t></w:r>", '<w:pPr><w:pStyle w:val="Heading1"/></w:pPr>']
_DOCX_PIECES += ["<w:tbl><w:tr><w:tc>", "</w:tc></w:tr></w:tbl>", "text", "<"]


def inputs(ext: str) -> st.SearchStrategy[bytes]:
    if ext == ".pdf":
        return _mutated((DATA / "sample.pdf").read_bytes())
    if ext == ".docx":
        pieces = st.lists(st.one_of(st.sampled_from(_DOCX_PIECES), st.text(max_size=8)), max_size=40)
        return st.one_of(_docx_with(pieces.map("".join)), _mutated((DATA / "sample.docx").read_bytes()))
    key = {".markdown": ".md", ".text": ".txt", ".htm": ".html"}.get(ext, ext)
    return _text_of(key)


EXTENSIONS = sorted(SUPPORTED_EXTENSIONS)


def test_every_format_is_fuzzed() -> None:
    assert set(EXTENSIONS) <= {".md", ".markdown", ".org", ".txt", ".text", ".rst", ".html", ".htm", ".json"} | {
        ".pdf",
        ".docx",
    }


@pytest.mark.parametrize("ext", EXTENSIONS)
def test_parser_returns_a_document_or_a_parse_error(ext: str) -> None:
    @settings(max_examples=_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(data=inputs(ext))
    def check(data: bytes) -> None:
        try:
            parsed = parse_bytes(data, f"fuzz{ext}")
        except (ParseError, UnsupportedFileType) as exc:
            assert exc.message
        else:
            assert isinstance(parsed, ParsedDocument)
            assert any(section.text.strip() for section in parsed.sections)

    check()


@pytest.fixture(scope="module")
def pool() -> Iterator[ParsePool]:
    found = ParsePool(ParseLimits.from_settings(Settings()), size=1)
    yield found
    found.close()


@pytest.mark.parametrize("ext", EXTENSIONS)
def test_sandboxed_parser_stays_within_the_limits(pool: ParsePool, ext: str) -> None:
    @settings(max_examples=_SANDBOXED_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(data=inputs(ext))
    def check(data: bytes) -> None:
        try:
            prepared = pool.prepare_blocking(data, f"fuzz{ext}")
        except (ParseError, UnsupportedFileType) as exc:
            assert not any(word in exc.message for word in _LIMIT_WORDS), exc.message
        else:
            assert prepared.chunks

    check()
