"""A deterministic folder of mixed documents (md, txt, html, json, rst, org, pdf, docx) made of real prose.

The prose comes from a BEIR corpus (SciFact abstracts by default): each document strings together a few
abstracts as sections, so files range from a paragraph to a dozen pages, with headings where the format has them.
"""

from __future__ import annotations

import html
import json
import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from harness import read_corpus

# (extension, share of the documents, sub-folder)
FORMATS = [
    ("md", 0.25, "notes"),
    ("txt", 0.17, "notes/plain"),
    ("html", 0.14, "web"),
    ("json", 0.09, "data"),
    ("rst", 0.10, "docs"),
    ("org", 0.10, "org"),
    ("pdf", 0.08, "papers"),
    ("docx", 0.07, "reports"),
]
_SECTIONS_PER_DOC = [1, 1, 2, 2, 3, 4, 6, 10]
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True)
class Section:
    heading: str
    paragraphs: list[str]


@dataclass(frozen=True)
class Doc:
    title: str
    sections: list[Section]


def _short(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0]


def _paragraphs(text: str, rng: random.Random) -> list[str]:
    sentences = [s for s in _SENTENCE.split(text.strip()) if s]
    out, i = [], 0
    while i < len(sentences):
        n = rng.randint(2, 5)
        out.append(" ".join(sentences[i : i + n]))
        i += n
    return out or [text]


def documents(corpus_path: Path, count: int, seed: int = 0) -> Iterator[tuple[str, Doc]]:
    """(extension, document) pairs, always the same for the same corpus, count and seed."""
    rng = random.Random(seed)
    rows = [r for r in read_corpus(corpus_path, limit=20_000) if r["text"].strip()]
    exts = [ext for ext, _, _ in FORMATS]
    weights = [w for _, w, _ in FORMATS]
    pointer = 0
    for i in range(count):
        ext = exts[i % len(exts)] if i < len(exts) else rng.choices(exts, weights)[0]
        n = rng.choice(_SECTIONS_PER_DOC)
        picked = [rows[(pointer + k) % len(rows)] for k in range(n)]
        pointer += n
        sections = [Section(_short(r["title"] or r["text"], 90), _paragraphs(r["text"], rng)) for r in picked]
        title = (
            _short(picked[0]["title"] or picked[0]["text"], 70)
            if n == 1
            else f"Review {i}: {_short(picked[0]['title'], 60)}"
        )
        yield ext, Doc(title=title, sections=sections)


def to_md(doc: Doc) -> bytes:
    parts = [f"# {doc.title}", ""]
    for s in doc.sections:
        parts += [f"## {s.heading}", "", *[p + "\n" for p in s.paragraphs]]
    return "\n".join(parts).encode()


def to_txt(doc: Doc) -> bytes:
    parts = [doc.title, ""]
    for s in doc.sections:
        parts += [s.heading, "", *[p + "\n" for p in s.paragraphs]]
    return "\n".join(parts).encode()


def to_html(doc: Doc) -> bytes:
    e = html.escape
    body = [f"<h1>{e(doc.title)}</h1>"]
    for s in doc.sections:
        body.append(
            f"<section><h2>{e(s.heading)}</h2>" + "".join(f"<p>{e(p)}</p>" for p in s.paragraphs) + "</section>"
        )
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{e(doc.title)}</title>"
        "<style>body{font-family:sans-serif}</style><script>var x = 1;</script></head><body>"
        f"<nav><a href='/'>Home</a> | <a href='/about'>About</a></nav><main>{''.join(body)}</main>"
        "<footer>Copyright example.org</footer></body></html>"
    )
    return page.encode()


def to_json(doc: Doc) -> bytes:
    value = {
        "title": doc.title,
        "tags": ["science", "abstract"],
        "sections": [{"heading": s.heading, "body": "\n\n".join(s.paragraphs)} for s in doc.sections],
    }
    return json.dumps(value, indent=2, ensure_ascii=False).encode()


def to_rst(doc: Doc) -> bytes:
    parts = [doc.title, "=" * len(doc.title), ""]
    for s in doc.sections:
        parts += [s.heading, "-" * len(s.heading), "", *[p + "\n" for p in s.paragraphs]]
    return "\n".join(parts).encode()


def to_org(doc: Doc) -> bytes:
    parts = [f"#+TITLE: {doc.title}", ""]
    for s in doc.sections:
        parts += [f"* {s.heading}", *[p + "\n" for p in s.paragraphs]]
    return "\n".join(parts).encode()


def to_docx(doc: Doc) -> bytes:
    import io

    import docx

    d = docx.Document()
    d.core_properties.title = doc.title
    d.add_heading(doc.title, level=0)
    for s in doc.sections:
        d.add_heading(s.heading, level=1)
        for p in s.paragraphs:
            d.add_paragraph(p)
    out = io.BytesIO()
    d.save(out)
    return out.getvalue()


def to_pdf(doc: Doc) -> bytes:
    """A plain text-layer PDF (Helvetica, A4), written by hand: no PDF library writes text without extra packages."""
    lines: list[tuple[str, str]] = [("F2", doc.title), ("F1", "")]
    for s in doc.sections:
        lines += [("F2", s.heading)]
        for p in s.paragraphs:
            lines += [("F1", line) for line in _wrap(p, 95)] + [("F1", "")]
    per_page = 62
    pages = [lines[i : i + per_page] for i in range(0, len(lines), per_page)]
    objects: list[bytes] = []

    def add(body: bytes) -> int:
        objects.append(body)
        return len(objects)

    catalog = add(b"")  # filled in below, once the page tree's number is known
    fonts = add(
        b"<< /F1 << /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >> "
        b"/F2 << /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >> >>"
    )
    tree = add(b"")
    kids = []
    for page in pages:
        ops = ["BT", "12 TL", "50 800 Td"]
        for font, text in page:
            ops.append(f"/{font} 10 Tf ({_pdf_escape(text)}) Tj T*")
        ops.append("ET")
        stream = "\n".join(ops).encode("latin-1")
        content = add(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
        kids.append(
            add(
                b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 595 842] "
                b"/Resources << /Font %d 0 R >> /Contents %d 0 R >>" % (tree, fonts, content)
            )
        )
    objects[tree - 1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(b"%d 0 R" % k for k in kids), len(kids))
    objects[catalog - 1] = b"<< /Type /Catalog /Pages %d 0 R >>" % tree
    info = add(b"<< /Title (" + _pdf_escape(doc.title).encode("latin-1") + b") /Producer (memex benchmark) >>")
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root %d 0 R /Info %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        catalog,
        info,
        xref,
    )
    return bytes(out)


def _wrap(text: str, width: int) -> list[str]:
    lines, current = [], ""
    for word in text.split():
        if current and len(current) + 1 + len(word) > width:
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    return [*lines, current] if current else lines


def _pdf_escape(text: str) -> str:
    safe = text.encode("cp1252", errors="replace").decode("latin-1")
    return safe.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


WRITERS: dict[str, Callable[[Doc], bytes]] = {
    "md": to_md,
    "txt": to_txt,
    "html": to_html,
    "json": to_json,
    "rst": to_rst,
    "org": to_org,
    "pdf": to_pdf,
    "docx": to_docx,
}
_FOLDERS = {ext: folder for ext, _, folder in FORMATS}


def write_folder(root: Path, *, corpus_path: Path, count: int, seed: int = 0) -> dict[str, int]:
    """Write `count` documents under root; returns how many of each type."""
    made: dict[str, int] = {}
    for i, (ext, doc) in enumerate(documents(corpus_path, count, seed)):
        folder = root / _FOLDERS[ext] / f"batch{i % 4}"
        folder.mkdir(parents=True, exist_ok=True)
        slug = re.sub(r"[^a-z0-9]+", "-", doc.title.lower()).strip("-")[:40]
        (folder / f"{i:04d}-{slug}.{ext}").write_bytes(WRITERS[ext](doc))
        made[ext] = made.get(ext, 0) + 1
    return made
