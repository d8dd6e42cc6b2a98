"""Every parser against the sample files in tests/data, corrupt ones included."""

from __future__ import annotations

import importlib.util
import io
import zipfile
from pathlib import Path
from types import ModuleType

import docx
import pytest
from pypdf import PdfWriter

from memex.errors import ParseError, UnsupportedFileType
from memex.ingest.models import ParsedDocument
from memex.ingest.parsers import (
    PARSERS,
    SUPPORTED_EXTENSIONS,
    markdown,
    mime_for,
    parse_bytes,
    parser_for,
    text,
)
from memex.ingest.parsers import docx as docx_parser

DATA = Path(__file__).resolve().parents[1] / "data"
SAMPLES = ("sample.md", "sample.org", "sample.txt", "sample.pdf", "sample.rst", "sample.html", "sample.json")


def parse_sample(name: str) -> ParsedDocument:
    return parse_bytes((DATA / name).read_bytes(), name)


def parse_error(data: bytes, name: str) -> str:
    with pytest.raises(ParseError) as caught:
        parse_bytes(data, name)
    return caught.value.message


def headings(document: ParsedDocument) -> list[tuple[str, ...]]:
    return [section.heading_path for section in document.sections]


def locations(document: ParsedDocument) -> list[str]:
    return [section.location for section in document.sections]


def load_sample_builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_samples", DATA / "make_samples.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def docx_bytes(build: object) -> bytes:
    document = docx.Document()
    build(document)  # type: ignore[operator]
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


# Registry


def test_registry_covers_every_supported_extension() -> None:
    expected = {".md", ".markdown", ".org", ".txt", ".text", ".pdf", ".rst", ".html", ".htm", ".json", ".docx"}
    assert set(PARSERS) == expected
    assert expected == SUPPORTED_EXTENSIONS


def test_parser_for_is_case_insensitive_and_none_when_unknown() -> None:
    assert parser_for("Notes.MD") is markdown.parse
    assert parser_for("dir/readme.text") is text.parse
    assert parser_for("photo.png") is None
    assert parser_for("Makefile") is None


def test_mime_types() -> None:
    assert mime_for("a.md") == "text/markdown"
    assert mime_for("a.PDF") == "application/pdf"
    assert mime_for("a.htm") == "text/html"
    assert mime_for("a.docx") == "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    assert mime_for("a.exe") == "application/octet-stream"


def test_unknown_extension_is_unsupported() -> None:
    with pytest.raises(UnsupportedFileType, match=r"unsupported file type \(\.exe\)"):
        parse_bytes(b"MZ\x90\x00", "setup.exe")
    with pytest.raises(UnsupportedFileType, match="no extension"):
        parse_bytes(b"all: build", "Makefile")


def test_every_sample_parses_with_located_non_empty_sections() -> None:
    for name in (*SAMPLES, "sample.docx"):
        document = parse_sample(name)
        assert document.title, name
        assert document.sections, name
        for section in document.sections:
            assert section.text.strip(), name
            assert section.location, name


# Files no parser can read


def test_empty_file_is_rejected() -> None:
    assert parse_error((DATA / "empty.md").read_bytes(), "empty.md") == "file is empty"
    assert parse_error(b" \n\t\r\n", "notes.txt") == "file is empty"
    assert parse_error(b"", "report.pdf") == "file is empty"
    assert parse_error(b"\xef\xbb\xbf\n", "bom-only.md") == "file is empty"


def test_binary_content_in_a_text_file_is_rejected_by_content() -> None:
    noise = (DATA / "binary.md").read_bytes()
    assert parse_error(noise, "binary.md") == "binary content, not text"
    assert parse_error(noise, "data.json") == "binary content, not text"
    assert parse_error((DATA / "sample.docx").read_bytes(), "renamed.txt") == "binary content, not text"


def test_content_that_does_not_match_a_binary_extension_is_rejected() -> None:
    assert parse_error(b"# just markdown", "report.pdf") == "content is not a PDF (no %PDF- header)"
    assert parse_error(b"# just markdown", "report.docx") == "content is not a DOCX (not a ZIP archive)"


def test_unexpected_library_errors_become_parse_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(*_: object, **__: object) -> None:
        raise RuntimeError("tokenizer crashed")

    monkeypatch.setattr(markdown, "MarkdownIt", explode)
    with pytest.raises(ParseError, match=r"^could not parse Markdown: RuntimeError: tokenizer crashed$") as caught:
        parse_bytes(b"# Title\n\ntext\n", "crash.md")
    assert isinstance(caught.value.__cause__, RuntimeError)


def test_document_without_any_text_is_rejected() -> None:
    assert parse_error(b"# Title\n\n## Empty\n", "headings.md").startswith("no text found")
    assert parse_error(b"<html><script>x()</script></html>", "page.html").startswith("no text found")


# Markdown


def test_markdown_front_matter_title_and_metadata() -> None:
    document = parse_sample("sample.md")
    assert document.title == "Memex Operations Guide"
    assert document.metadata == {
        "title": "Memex Operations Guide",
        "tags": ["operations", "security"],
        "owner": "platform-team",
        "reviewed": "2024-03-01",  # a YAML date becomes an ISO string, safe for JSON columns
    }


def test_markdown_heading_paths_and_line_locations() -> None:
    document = parse_sample("sample.md")
    assert headings(document) == [
        ("Operations Handbook",),
        ("Operations Handbook", "Key rotation"),
        ("Operations Handbook", "Key rotation", "Rotating the signing key"),
        ("Operations Handbook", "Backup and restore"),
        ("Operations Handbook", "Unicode handling"),
    ]
    # Lines count from the top of the file, front matter included.
    assert locations(document) == ["line 7", "line 12", "line 17", "line 26", "line 38"]


def test_markdown_keeps_code_lists_tables_and_paragraph_breaks() -> None:
    sections = parse_sample("sample.md").sections
    assert "memex keys create --kind signing\nmemex keys activate --id 7" in sections[2].text
    assert sections[2].text.startswith("Generate the new key first, then switch the active key id:\n\n")
    backup = sections[3].text
    assert "- Verify the checksum of every archive.\n- Restore into a scratch database" in backup
    assert "Dump | pg_dump -Fc memex" in backup
    assert "**" not in sections[1].text
    assert "Größe.txt, café.md and naïve.org, and places like 東京" in sections[4].text


def test_markdown_title_falls_back_to_first_h1_then_file_stem() -> None:
    assert parse_bytes(b"Intro.\n\n# Real Title\n\nBody.\n", "x.md").title == "Real Title"
    document = parse_bytes(b"Just a note.\n\n## Sub\n\nMore.\n", "notes/meeting-2024.md")
    assert document.title == "meeting-2024"
    assert headings(document) == [(), ("Sub",)]
    assert locations(document) == ["line 1", "line 3"]


def test_markdown_sibling_headings_replace_each_other_in_the_path() -> None:
    source = b"# A\n\n## B\n\nb\n\n### C\n\nc\n\n## D\n\nd\n\n# E\n\ne\n"
    assert headings(parse_bytes(source, "x.md")) == [("A", "B"), ("A", "B", "C"), ("A", "D"), ("E",)]


def test_markdown_invalid_front_matter_names_the_line() -> None:
    message = parse_error(b"---\ntitle: ok\ntags: [unclosed\n---\n# Body\n\ntext\n", "bad.md")
    assert message.startswith("invalid YAML front matter at line ")


def test_markdown_dashes_around_prose_are_not_front_matter() -> None:
    # "---" above and below a line is a thematic break plus a setext heading, not YAML.
    document = parse_bytes(b"---\nJust prose here.\n---\n\nMore.\n", "hr.md")
    assert document.metadata == {}
    assert headings(document) == [("Just prose here.",)]
    assert document.text == "More."


def test_markdown_crlf_line_endings() -> None:
    document = parse_bytes(b"# T\r\n\r\nOne.\r\nTwo.\r\n", "crlf.md")
    assert document.sections[0].text == "One.\nTwo."


# Org


def test_org_title_metadata_and_outline() -> None:
    document = parse_sample("sample.org")
    assert document.title == "Garden Journal"
    assert document.metadata == {"title": "Garden Journal", "author": "Ada Gardener"}
    assert headings(document) == [
        (),
        ("Soil preparation",),
        ("Soil preparation", "Raised beds"),
        ("Watering schedule",),
        ("Harvest log",),
    ]
    assert locations(document) == ["line 4", "line 6", "line 10", "line 14", "line 20"]


def test_org_text_drops_keywords_drawers_and_link_syntax() -> None:
    document = parse_sample("sample.org")
    assert document.sections[0].text == "Notes kept through the growing season."
    assert "See the bed plans for dimensions." in document.sections[2].text
    assert ":PROPERTIES:" not in document.text
    assert "#+TITLE" not in document.text
    assert "東京" in document.sections[4].text


def test_org_without_title_uses_file_stem() -> None:
    assert parse_bytes(b"* Only heading\nSome text.\n", "journal.org").title == "journal"


# Plain text


def test_text_title_sections_and_locations() -> None:
    document = parse_sample("sample.txt")
    assert document.title == "Incident Review: Storage Outage"
    assert len(document.sections) == 1
    assert document.sections[0].location == "line 1"
    assert "\n\nKey rotation was not affected" in document.sections[0].text
    assert "page the on-call engineer in 東京" in document.text


def test_text_long_first_line_falls_back_to_stem() -> None:
    assert parse_bytes(b"x" * 150 + b"\n\nbody\n", "dump.txt").title == "dump"


def test_text_splits_long_files_at_paragraph_boundaries() -> None:
    paragraph = "word " * 150  # 750 characters
    source = "\n\n".join(f"{index} {paragraph}" for index in range(6)).encode()
    document = parse_bytes(source, "long.txt")
    assert len(document.sections) > 1
    assert all(len(section.text) <= text.SECTION_CHARS + 10 for section in document.sections)
    assert locations(document)[:2] == ["line 1", "line 5"]
    assert document.text.count("word") == 900


def test_text_in_cp1252_is_decoded() -> None:
    document = parse_bytes("Größe \u2013 café\n\nnaïve".encode("cp1252"), "legacy.txt")
    assert document.title == "Größe \u2013 café"


# PDF


def test_pdf_one_section_per_page_with_title_from_metadata() -> None:
    document = parse_sample("sample.pdf")
    assert document.title == "Operations Handbook"
    assert locations(document) == ["page 1", "page 2", "page 3"]
    assert headings(document) == [(), (), ()]
    assert document.sections[0].text.startswith("Key rotation\nAPI keys are rotated every 90 days.")
    assert "full restore is rehearsed" in document.sections[1].text
    assert "Größe, café and naïve" in document.sections[2].text
    assert document.metadata["pages"] == 3
    assert "\r" not in document.text


def test_pdf_without_title_uses_file_stem() -> None:
    builder = load_sample_builder()
    data = builder.build_pdf((("Only page", "Body text."),), title="")
    assert parse_bytes(data, "scans/contract.pdf").title == "contract"


def test_encrypted_pdf() -> None:
    message = parse_error((DATA / "encrypted.pdf").read_bytes(), "encrypted.pdf")
    assert message == "PDF is encrypted (password protected)"


def test_corrupt_pdf() -> None:
    message = parse_error((DATA / "corrupt.pdf").read_bytes(), "corrupt.pdf")
    assert message.startswith("corrupt PDF: ")
    assert "damaged or truncated" in message


def test_truncated_pdf_is_corrupt() -> None:
    data = (DATA / "sample.pdf").read_bytes()
    assert parse_error(data[: len(data) // 2], "half.pdf").startswith("corrupt PDF: ")


def test_pdf_without_a_text_layer() -> None:
    writer = PdfWriter()
    writer.add_blank_page(width=200, height=200)
    buffer = io.BytesIO()
    writer.write(buffer)
    assert parse_error(buffer.getvalue(), "scan.pdf").startswith("no text found in the PDF")


# reStructuredText


def test_rst_title_docinfo_and_sections() -> None:
    document = parse_sample("sample.rst")
    assert document.title == "Deployment Playbook"
    assert document.metadata == {"author": "Platform Team", "version": "2.1"}
    assert headings(document) == [
        ("Deployment Playbook",),
        ("Deployment Playbook", "Key rotation"),
        ("Deployment Playbook", "Key rotation", "Rotation steps"),
        ("Deployment Playbook", "Backup restore"),
        ("Deployment Playbook", "Unicode"),
    ]
    assert locations(document) == ["line 2", "line 10", "line 15", "line 25", "line 36"]
    assert "- Create the new key.\n- Activate it." in document.sections[2].text
    assert "memex keys create --kind signing" in document.sections[2].text


def test_rst_include_and_raw_directives_do_nothing_and_print_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    document = parse_sample("sample.rst")
    assert "root:" not in document.text
    assert "<script>" not in document.text
    assert "directive disabled" not in document.text
    assert document.sections[3].text == "Restores are rehearsed every quarter against a scratch database."
    captured = capsys.readouterr()
    assert captured.err == ""
    assert captured.out == ""


def test_rst_with_several_top_sections_and_broken_markup() -> None:
    source = b"First\n=====\n\nOne `unclosed.\n\nSecond\n======\n\nTwo.\n\n.. unknown-directive:: x\n"
    document = parse_bytes(source, "notes.rst")
    assert document.title == "First"
    assert headings(document) == [("First",), ("Second",)]


def test_rst_without_sections_uses_file_stem() -> None:
    assert parse_bytes(b"Just a paragraph.\n", "plain.rst").title == "plain"


# HTML


def test_html_title_and_metadata() -> None:
    document = parse_sample("sample.html")
    assert document.title == "Team Wiki: Operations"
    assert document.metadata == {
        "description": "How the operations team runs Memex",
        "author": "Ops Team",
        "lang": "en",
    }


def test_html_drops_scripts_styles_and_page_chrome() -> None:
    document = parse_sample("sample.html")
    assert "SHOULD-BE-DROPPED" not in document.text
    assert "font-family" not in document.text
    assert "Home" not in document.text


def test_html_locations_are_words_for_people() -> None:
    page = b"<html><body><p>Intro before any heading.</p><h2>Setup</h2><p>Install it.</p><h3>Proxy</h3><p>Set it.</p>"
    document = parse_bytes(page, "page.html")
    assert locations(document) == ["top of the page", "section 1", "section 2"]


def test_html_heading_aware_sections() -> None:
    document = parse_sample("sample.html")
    assert headings(document) == [
        ("Operations",),
        ("Operations", "Key rotation"),
        ("Operations", "Key rotation", "Emergency rotation"),
        ("Operations", "Backup restore"),
        ("Operations", "Unicode"),
    ]
    assert locations(document) == ["section 1", "section 2", "section 3", "section 4", "section 5"]
    sections = document.sections
    assert sections[0].text == "This page describes routine operations."
    assert sections[1].text == "Keys are rotated every 90 days.\n\nThe old key stays valid for 24 hours."
    assert "revoke it at once\nand notify security." in sections[2].text
    assert "memex keys revoke --id 7\nmemex keys create" in sections[2].text
    assert "- Check the checksum\n- Restore to scratch" in sections[3].text
    assert "Monday | Full backup" in sections[3].text
    assert sections[4].text == "Größe café naïve 東京"


def test_html_title_falls_back_to_h1_then_stem() -> None:
    assert parse_bytes(b"<h1>Heading <b>One</b></h1><p>x</p>", "a.html").title == "Heading One"
    document = parse_bytes(b"<p>Loose <i>fragment</i> text</p>", "docs/fragment.htm")
    assert document.title == "fragment"
    assert document.sections[0].text == "Loose fragment text"
    assert document.sections[0].heading_path == ()


# JSON


def test_json_title_sections_and_key_paths() -> None:
    document = parse_sample("sample.json")
    assert document.title == "Service Catalogue"
    assert headings(document) == [("title",), ("owner",), ("services",), ("key_rotation",), ("notes",), ("retired",)]
    assert locations(document)[2] == "key services"
    assert document.sections[2].text.split("\n") == [
        "services[0].name: search",
        "services[0].port: 8080",
        "services[0].tags[0]: core",
        "services[0].tags[1]: public",
        "services[1].name: ingest",
        "services[1].port: 8081",
        "services[1].enabled: false",
    ]
    assert document.sections[1].text == "owner.team: platform\nowner.contact: ops@example.org"
    assert document.sections[4].text == "notes: Größe café naïve 東京"
    assert document.sections[5].text == "retired: null"


def test_json_top_level_array_and_name_title() -> None:
    document = parse_bytes(b'[{"name": "a", "empty": {}}, {"list": []}]', "items.json")
    assert document.title == "items"
    assert headings(document) == [("[0]",), ("[1]",)]
    assert document.sections[0].text == "[0].name: a\n[0].empty: {}"
    assert document.sections[1].location == "key [1]"
    assert parse_bytes(b'{"name": "Catalogue", "x": 1}', "c.json").title == "Catalogue"


def test_invalid_json_names_line_and_column() -> None:
    message = parse_error((DATA / "invalid.json").read_bytes(), "invalid.json")
    assert message == "invalid JSON at line 4, column 37: Expecting property name enclosed in double quotes"


def test_deeply_nested_json() -> None:
    assert parse_error(b"[" * 100_000, "deep.json") == "JSON is nested too deeply to parse"


# DOCX


def test_docx_title_metadata_headings_and_locations() -> None:
    document = parse_sample("sample.docx")
    assert document.title == "Storage Runbook"
    assert document.metadata == {"author": "Platform Team", "subject": "Operations", "keywords": "backup, keys"}
    assert headings(document) == [
        ("Storage Runbook",),
        ("Storage Runbook", "Key rotation"),
        ("Storage Runbook", "Key rotation", "Emergency rotation"),
        ("Storage Runbook", "Backup restore"),
        ("Storage Runbook", "Unicode"),
    ]
    assert locations(document) == ["paragraph 1", "paragraph 3", "paragraph 5", "paragraph 7", "paragraph 9"]


def test_docx_table_text_follows_its_section() -> None:
    section = parse_sample("sample.docx").sections[3]
    assert section.text == (
        "Restores are rehearsed monthly on a scratch database.\n\n"
        "Day | Task\nMonday | Full backup\nFriday | Restore drill"
    )


def test_docx_title_falls_back_to_title_style_then_heading_then_stem() -> None:
    with_title_style = docx_bytes(lambda d: (d.add_heading("Styled Title", 0), d.add_paragraph("Body.")))
    assert parse_bytes(with_title_style, "a.docx").title == "Styled Title"
    with_heading = docx_bytes(lambda d: (d.add_paragraph("Intro."), d.add_heading("First Heading", 2)))
    assert parse_bytes(with_heading, "b.docx").title == "First Heading"
    plain = docx_bytes(lambda d: d.add_paragraph("Only a paragraph."))
    document = parse_bytes(plain, "uploads/memo.docx")
    assert document.title == "memo"
    assert document.sections[0].location == "paragraph 1"


def test_truncated_docx() -> None:
    message = parse_error((DATA / "truncated.docx").read_bytes(), "truncated.docx")
    assert message.startswith("corrupt or truncated DOCX: ")


def test_zip_that_is_not_a_word_document() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("hello.txt", "not a word document")
    message = parse_error(buffer.getvalue(), "fake.docx")
    assert message == "corrupt or truncated DOCX: There is no item named '[Content_Types].xml' in the archive"


def test_docx_that_inflates_too_far_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(docx_parser, "MAX_UNCOMPRESSED_BYTES", 1024 * 1024)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("word/document.xml", b"\0" * (2 * 1024 * 1024))
    message = parse_error(buffer.getvalue(), "bomb.docx")
    assert message == "DOCX expands to more than 1 MB when unzipped; refusing it"
