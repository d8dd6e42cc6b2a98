"""The parsing sandbox: files are read in child processes, within limits; a hostile file fails with the reason."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from memex.errors import ParseError
from memex.ingest.chunking import Chunker
from memex.ingest.prepare import from_json, prepare, to_json
from memex.ingest.sandbox import ParseLimits, ParsePool
from memex.settings import Settings
from tests.conftest import DATA
from tests.ingest import hostile

SAMPLES = ["sample.md", "sample.org", "sample.txt", "sample.pdf", "sample.rst", "sample.html", "sample.json"]
SAMPLES += ["sample.docx"]


@pytest.fixture(scope="module")
def pool() -> Iterator[ParsePool]:
    """A pool with the default limits, shared by the tests that expect no limit to be reached."""
    found = ParsePool(ParseLimits.from_settings(Settings()), size=1)
    yield found
    found.close()


def tight(**limits: float) -> ParsePool:
    return ParsePool(dataclasses.replace(ParseLimits.from_settings(Settings()), **limits), size=1)


@pytest.fixture(scope="module")
def chunker() -> Chunker:
    from memex.embeddings.model_files import tokenizer

    return Chunker(tokenizer(), max_tokens=256)


@pytest.mark.parametrize("name", SAMPLES)
def test_sandbox_reads_a_file_as_the_parser_does_in_process(pool: ParsePool, chunker: Chunker, name: str) -> None:
    data = (DATA / name).read_bytes()
    assert pool.prepare_blocking(data, name) == prepare(data, name, chunker)


def test_json_round_trip_keeps_everything(chunker: Chunker) -> None:
    prepared = prepare((DATA / "sample.md").read_bytes(), "sample.md", chunker)
    assert from_json(to_json(prepared)) == prepared


def test_limits_come_from_the_settings() -> None:
    settings = Settings(
        parse_timeout_seconds=7,
        parse_cpu_seconds=3,
        parse_memory_mb=300,
        max_document_chars=12_345,
        parse_workers=3,
    )
    pool = ParsePool.from_settings(settings)
    assert (pool.limits.timeout_seconds, pool.limits.cpu_seconds, pool.limits.memory_mb) == (7, 3, 300)
    assert pool.limits.max_chars == 12_345


def test_a_parse_error_comes_back_as_it_is(pool: ParsePool) -> None:
    with pytest.raises(ParseError, match="corrupt PDF"):
        pool.prepare_blocking((DATA / "corrupt.pdf").read_bytes(), "corrupt.pdf")


def test_pdf_that_inflates_to_a_gigabyte_fails_for_memory_and_the_next_file_is_read() -> None:
    pool = tight(memory_mb=256)
    try:
        with pytest.raises(ParseError) as failed:
            pool.prepare_blocking(hostile.pdf_bomb(1024), "bomb.pdf")
        assert failed.value.message == "the file needs more than 256 MB of memory to read (MEMEX_PARSE_MEMORY_MB)"
        assert pool.prepare_blocking((DATA / "sample.md").read_bytes(), "sample.md").chunks
    finally:
        pool.close()


def test_file_that_needs_more_cpu_than_allowed_fails_for_cpu_time() -> None:
    pool = tight(cpu_seconds=1, timeout_seconds=600)
    try:
        with pytest.raises(ParseError) as failed:
            pool.prepare_blocking(hostile.markdown_brackets(), "brackets.md")
        assert failed.value.message == "the file needs more than 1 s of CPU time to read (MEMEX_PARSE_CPU_SECONDS)"
        assert pool.prepare_blocking((DATA / "sample.md").read_bytes(), "sample.md").chunks
    finally:
        pool.close()


def test_file_that_takes_longer_than_allowed_fails_for_time() -> None:
    pool = tight(cpu_seconds=600, timeout_seconds=0.5)
    try:
        with pytest.raises(ParseError) as failed:
            pool.prepare_blocking(hostile.markdown_brackets(), "brackets.md")
        assert failed.value.message == "the file took longer than 0.5 s to read (MEMEX_PARSE_TIMEOUT_SECONDS)"
    finally:
        pool.close()


def test_text_over_the_character_limit_fails_with_the_limit() -> None:
    pool = tight(max_chars=1000)
    try:
        with pytest.raises(ParseError) as failed:
            pool.prepare_blocking(b"All work and no play. " * 100, "dull.txt")
        assert failed.value.message == (
            "the file holds 2,199 characters of text; the limit is 1,000 (MEMEX_MAX_DOCUMENT_CHARS): "
            "split it into smaller files"
        )
    finally:
        pool.close()


# The files below once took minutes; fixed, they are read well within the default limits.


def test_org_file_of_newlines_is_empty_not_slow(pool: ParsePool) -> None:
    with pytest.raises(ParseError, match="file is empty"):
        pool.prepare_blocking(hostile.org_newlines(), "newlines.org")
    with pytest.raises(ParseError, match="no text found"):
        pool.prepare_blocking(b"#+TITLE: x\n" + hostile.org_newlines(), "keyword.org")


def test_org_file_with_ten_thousand_headings_is_read(pool: ParsePool) -> None:
    prepared = pool.prepare_blocking(hostile.org_headings(10_000), "headings.org")
    assert len(prepared.parsed.sections) == 10_000
    assert prepared.parsed.sections[-1].heading_path == ("Heading 9999",)


def test_docx_with_ten_thousand_styles_is_read(pool: ParsePool) -> None:
    prepared = pool.prepare_blocking(hostile.docx_many_styles(), "styles.docx")
    assert len(prepared.parsed.sections) == 100  # one per Heading 1 paragraph
    assert prepared.parsed.sections[1].heading_path == ("Paragraph 100 of the styled report.",)


def test_deeply_nested_html_is_refused_at_once(pool: ParsePool) -> None:
    with pytest.raises(ParseError) as failed:
        pool.prepare_blocking(hostile.nested_html(80_000), "deep.html")
    assert failed.value.message == "HTML is nested more than 512 elements deep; Memex reads up to 512"
    assert pool.prepare_blocking(hostile.nested_html(300), "nested.html").parsed.text == "deep"
