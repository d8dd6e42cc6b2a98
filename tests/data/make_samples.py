"""Build the binary sample files in tests/data: run it again and the same bytes come out.

PYTHONPATH=src .venv/bin/python tests/data/make_samples.py
"""

from __future__ import annotations

import io
import random
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import docx
from pypdf import PdfReader, PdfWriter

DATA = Path(__file__).resolve().parent

PDF_TITLE = "Operations Handbook"
PDF_PAGES: tuple[tuple[str, ...], ...] = (
    (
        "Key rotation",
        "API keys are rotated every 90 days.",
        "The previous key stays valid for a grace period of 24 hours.",
    ),
    (
        "Backup restore",
        "Backups run nightly and are kept for 30 days.",
        "Every quarter a full restore is rehearsed on a scratch database.",
    ),
    (
        "Unicode handling",
        "File names like Größe, café and naïve must survive a round trip.",
    ),
)
# A fixed file identifier keeps the encrypted sample byte-for-byte reproducible: RC4 keys derive from it.
_PDF_ID = b"MemexSamplePDFID".hex()


def _pdf_string(text: str) -> bytes:
    raw = text.encode("cp1252")
    return b"(" + raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b")"


def _page_content(lines: tuple[str, ...]) -> bytes:
    ops = [b"BT", b"/F1 18 Tf", b"72 720 Td", _pdf_string(lines[0]) + b" Tj", b"/F1 12 Tf"]
    for line in lines[1:]:
        ops += [b"0 -24 Td", _pdf_string(line) + b" Tj"]
    ops.append(b"ET")
    return b"\n".join(ops) + b"\n"


def build_pdf(pages: tuple[tuple[str, ...], ...], *, title: str) -> bytes:
    """Write a minimal PDF with one Helvetica text block per page and a Title in its Info dictionary."""
    n = len(pages)
    first_page = 4
    objects: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Count %d /Kids [%s] >>" % (n, b" ".join(b"%d 0 R" % (first_page + 2 * i) for i in range(n))),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    for i, lines in enumerate(pages):
        content = _page_content(lines)
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            b"/Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % (first_page + 2 * i + 1)
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(content) + content + b"endstream")
    objects.append(b"<< /Title " + _pdf_string(title) + b" /Producer (memex make_samples) >>")
    info = len(objects)

    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info %d 0 R /ID [<%s> <%s>] >>\n" % (
        len(objects) + 1,
        info,
        _PDF_ID.encode(),
        _PDF_ID.encode(),
    )
    out += b"startxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


def encrypt_pdf(data: bytes, *, password: str) -> bytes:
    """Return the PDF encrypted with a user password (RC4-128, so no crypto library is needed)."""
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    writer.encrypt(user_password=password, algorithm="RC4-128")
    buffer = io.BytesIO()
    writer.write(buffer)
    out = buffer.getvalue()
    # pypdf draws a random second file identifier; pin it to the first so reruns give identical bytes.
    start = out.rindex(b"/ID")
    head, _, tail = out[start:].partition(b"]")
    ids = head.split(b"<")[1:]
    first, second = ids[0].split(b">")[0], ids[1].split(b">")[0]
    return out[:start] + head.replace(second, first) + b"]" + tail


def build_docx() -> bytes:
    """Write a DOCX with a Title, Heading 1 and 2 paragraphs, body text and a table."""
    document = docx.Document()
    props = document.core_properties
    props.title = "Storage Runbook"
    props.author = "Platform Team"
    props.subject = "Operations"
    props.keywords = "backup, keys"
    props.comments = ""
    props.created = props.modified = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
    props.last_modified_by = "Platform Team"
    props.revision = 1

    document.add_heading("Storage Runbook", level=0)
    document.add_paragraph("This runbook covers routine storage work.")
    document.add_heading("Key rotation", level=1)
    document.add_paragraph("Encryption keys for the storage volumes are rotated every 90 days.")
    document.add_heading("Emergency rotation", level=2)
    document.add_paragraph("If a key leaks, revoke it and re-encrypt the affected volumes.")
    document.add_heading("Backup restore", level=1)
    document.add_paragraph("Restores are rehearsed monthly on a scratch database.")
    table = document.add_table(rows=3, cols=2)
    rows = (("Day", "Task"), ("Monday", "Full backup"), ("Friday", "Restore drill"))
    for row, cells in zip(table.rows, rows, strict=True):
        for cell, text in zip(row.cells, cells, strict=True):
            cell.text = text
    document.add_heading("Unicode", level=1)
    document.add_paragraph("Größe café naïve 東京")

    buffer = io.BytesIO()
    document.save(buffer)
    return _pin_zip_timestamps(buffer.getvalue())


def _pin_zip_timestamps(data: bytes) -> bytes:
    # python-docx stamps each zip member with the current time; a fixed date makes reruns identical.
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            pinned = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
            pinned.compress_type = zipfile.ZIP_DEFLATED
            target.writestr(pinned, source.read(info.filename))
    return out.getvalue()


def binary_noise(size: int) -> bytes:
    """Seeded random bytes with NULs sprinkled in: what an image renamed to .md looks like."""
    rng = random.Random(1234)
    noise = bytearray(rng.randbytes(size))
    noise[::97] = bytes(len(noise[::97]))
    return bytes(noise)


def main() -> None:
    """Write every generated sample into tests/data."""
    sample_pdf = build_pdf(PDF_PAGES, title=PDF_TITLE)
    sample_docx = build_docx()
    files = {
        "sample.pdf": sample_pdf,
        "encrypted.pdf": encrypt_pdf(sample_pdf, password="secret"),
        "corrupt.pdf": b"%PDF-1.7\n" + random.Random(99).randbytes(2048),
        "sample.docx": sample_docx,
        "truncated.docx": sample_docx[: len(sample_docx) // 2],
        "binary.md": binary_noise(4096),
        "empty.md": b"",
    }
    for name, data in files.items():
        (DATA / name).write_bytes(data)
        print(f"{name}: {len(data)} bytes")


if __name__ == "__main__":
    main()
