"""Hostile files, made on the fly: each one costs a naive parser minutes, gigabytes or a crash."""

from __future__ import annotations

import io
import zipfile
import zlib


def org_newlines(size: int = 100_000) -> bytes:
    """An Org file of nothing but newlines: once made a keyword regex backtrack for minutes."""
    return b"\n" * size


def org_headings(count: int = 10_000) -> bytes:
    """Many headings: orgparse finds each heading's parent by scanning back over every earlier one."""
    return "".join(f"* Heading {i}\nText under heading {i}.\n" for i in range(count)).encode()


def nested_html(depth: int = 80_000) -> bytes:
    """Divs nested tens of thousands deep: the HTML tree builder checks every open element at each tag."""
    return b"<html><body>" + b"<div>" * depth + b"deep" + b"</div>" * depth + b"</body></html>"


def pdf_bomb(inflated_mb: int = 1024) -> bytes:
    """A one-page PDF whose content stream is about 1 MB deflated and `inflated_mb` MB inflated."""
    block = b"q Q " * (1024 * 1024 // 4)
    # After a full flush deflate forgets its history, so every further copy of the block compresses to the same
    # bytes: compress two, repeat the second, and end with an empty final block and the Adler-32 of it all.
    compressor = zlib.compressobj(9)
    first = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)
    again = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)
    adler = 1
    for _ in range(inflated_mb):
        adler = zlib.adler32(block, adler)
    stream = first + again * (inflated_mb - 1) + b"\x03\x00" + adler.to_bytes(4, "big")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/word/document.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>'
    '<Override PartName="/word/styles.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.styles+xml"/>'
    "</Types>"
)
_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" '
    'Target="word/document.xml"/></Relationships>'
)
_DOC_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles" '
    'Target="styles.xml"/></Relationships>'
)
_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"


def docx_many_styles(styles: int = 10_000, paragraphs: int = 10_000) -> bytes:
    """A DOCX with thousands of styles and paragraphs: looking each paragraph's style up scans them all."""
    style_xml = "".join(
        f'<w:style w:type="paragraph" w:styleId="S{i}"><w:name w:val="Style {i}"/></w:style>' for i in range(styles)
    )
    heading = '<w:style w:type="paragraph" w:styleId="Heading1"><w:name w:val="heading 1"/></w:style>'
    body = "".join(
        f'<w:p><w:pPr><w:pStyle w:val="{"Heading1" if i % 100 == 0 else f"S{styles - 1 - i % styles}"}"/></w:pPr>'
        f"<w:r><w:t>Paragraph {i} of the styled report.</w:t></w:r></w:p>"
        for i in range(paragraphs)
    )
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", _CONTENT_TYPES)
        archive.writestr("_rels/.rels", _RELS)
        archive.writestr("word/_rels/document.xml.rels", _DOC_RELS)
        archive.writestr("word/styles.xml", f'<w:styles xmlns:w="{_W}">{heading}{style_xml}</w:styles>')
        archive.writestr("word/document.xml", f'<w:document xmlns:w="{_W}"><w:body>{body}</w:body></w:document>')
    return out.getvalue()


def markdown_brackets(count: int = 400_000) -> bytes:
    """Markdown of nothing but "[": markdown-it looks for each one's closing bracket; seconds of CPU, little memory."""
    return b"[" * count
