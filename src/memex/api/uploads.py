"""Reading a multipart upload as it streams in, refusing it (413) the moment it passes the size limit.

Starlette's form parser spools any amount to disk before a handler sees it; this reader counts bytes as
they arrive and stops reading at the limit, so an oversized body is never taken in whole.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import Request
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from memex.documents.service import Upload
from memex.errors import FileTooLarge, InvalidInput

FIELD = "files"
# Room for the multipart envelope (boundaries, part headers) on top of the files' own bytes.
ENVELOPE_BYTES = 64 * 1024
MAX_FILES = 1000


@dataclass
class _Part:
    headers: dict[bytes, bytes] = field(default_factory=dict)
    name: str | None = None
    filename: str | None = None
    data: bytearray = field(default_factory=bytearray)


class _Collector:
    """Callbacks for python-multipart's streaming parser: gathers the parts of the `files` field."""

    def __init__(self, max_file_bytes: int, limit_mb: int) -> None:
        self.max_file_bytes = max_file_bytes
        self.limit_mb = limit_mb
        self.files: list[Upload] = []
        self._part = _Part()
        self._header_field = bytearray()
        self._header_value = bytearray()

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self._begin,
            "on_header_field": lambda d, s, e: self._header_field.extend(d[s:e]),
            "on_header_value": lambda d, s, e: self._header_value.extend(d[s:e]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._data,
            "on_part_end": self._end,
        }

    def _begin(self) -> None:
        self._part = _Part()

    def _header_end(self) -> None:
        self._part.headers[bytes(self._header_field).lower()] = bytes(self._header_value)
        self._header_field.clear()
        self._header_value.clear()

    def _headers_finished(self) -> None:
        disposition, options = parse_options_header(self._part.headers.get(b"content-disposition"))
        if disposition != b"form-data":
            raise InvalidInput("each part of the upload needs a 'Content-Disposition: form-data' header")
        self._part.name = _text(options.get(b"name"))
        self._part.filename = _text(options.get(b"filename"))
        if self._part.name == FIELD and not self._part.filename:
            raise InvalidInput(f"each part of the '{FIELD}' field needs a filename")
        if len(self.files) >= MAX_FILES:
            raise InvalidInput(f"at most {MAX_FILES} files per upload")

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self._part.name != FIELD:
            return  # other fields are ignored (their bytes still count towards the request's limit)
        self._part.data.extend(data[start:end])
        if len(self._part.data) > self.max_file_bytes:
            raise FileTooLarge(f"{self._part.filename}: {too_large(self.limit_mb)}")

    def _end(self) -> None:
        if self._part.name == FIELD and self._part.filename is not None:
            self.files.append(Upload(name=self._part.filename, data=bytes(self._part.data)))


def _text(value: bytes | None) -> str | None:
    if value is None:
        return None
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


def too_large(limit_mb: int) -> str:
    return f"the upload is larger than the limit of {limit_mb} MiB (MEMEX_MAX_UPLOAD_MB)"


async def read_files(request: Request, *, limit_mb: int) -> list[Upload]:
    """The files sent in the multipart field `files`; 413 as soon as the body passes the limit."""
    content_type, options = parse_options_header(request.headers.get("content-type"))
    boundary = options.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise InvalidInput(f"send the files as multipart/form-data, in the field '{FIELD}'")
    max_file_bytes = limit_mb * 1024 * 1024
    max_body = max_file_bytes + ENVELOPE_BYTES
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_body:
        raise FileTooLarge(too_large(limit_mb))
    collector = _Collector(max_file_bytes, limit_mb)
    parser = MultipartParser(boundary, collector.callbacks())  # type: ignore[arg-type]
    received = 0
    try:
        async for chunk in request.stream():
            # Parse first, so that an oversized file is named in the message; a chunk is small either way.
            parser.write(chunk)
            received += len(chunk)
            if received > max_body:
                raise FileTooLarge(too_large(limit_mb))
        parser.finalize()
    except MultipartParseError as exc:
        raise InvalidInput(f"malformed multipart body: {exc}") from exc
    return collector.files
