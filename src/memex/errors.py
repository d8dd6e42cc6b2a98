"""Errors that Memex raises on purpose, each with the message a user sees.

MemexError
 ├── InvalidInput (400)            ├── ParseError: a file could not be read as its type
 │    ├── QueryTooLong (400)       │    └── ParseLimit: reading it passed a sandbox limit
 │    └── InvalidMessage (422)     ├── UnsupportedFileType (415)
 ├── AuthenticationRequired (401)  ├── FileTooLarge (413)
 ├── PermissionDenied (403)        ├── NotFound (404)
 ├── Conflict (409)                ├── RateLimited (429)
 ├── UploadRejected (the files')   ├── DatabaseUnavailable (503)
 ├── ConfigurationError            ├── ServiceUnavailable (503)
 └── EmbeddingModelMismatch        │    └── EmbeddingModelChanged (503)
                                   └── BackupError: a backup could not be made, read or restored

Services raise these; only `api/errors.py` and `cli/main.py` turn them into HTTP statuses and exit codes.
A class's docstring is its default message.
"""

from __future__ import annotations


class MemexError(Exception):
    """Something went wrong in Memex."""

    status_code: int = 500

    def __init__(self, message: str | None = None) -> None:
        self.message = message or (self.__doc__ or "").strip()
        super().__init__(self.message)


class InvalidInput(MemexError):
    """The request is not valid."""

    status_code = 400


class QueryTooLong(InvalidInput):
    """The query is too long: shorten it and try again."""


class InvalidMessage(InvalidInput):
    """The chat message is not valid."""

    status_code = 422


class ParseError(MemexError):
    """The file could not be parsed."""

    status_code = 422


class ParseLimit(ParseError):
    """The file could not be read within the parsing sandbox's limits."""


class UploadRejected(MemexError):
    """None of the uploaded files was accepted."""

    def __init__(self, message: str, *, status_code: int, rejected: list[tuple[str, str]]) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.rejected = rejected  # (file name, reason), in the order they were sent


class UnsupportedFileType(MemexError):
    """This file type is not supported."""

    status_code = 415


class FileTooLarge(MemexError):
    """The file is larger than the upload limit (MEMEX_MAX_UPLOAD_MB)."""

    status_code = 413


class AuthenticationRequired(MemexError):
    """Authentication required: log in, or send 'Authorization: Bearer <api key>'."""

    status_code = 401


class PermissionDenied(MemexError):
    """You do not have permission to do this."""

    status_code = 403


class NotFound(MemexError):
    """Not found."""

    status_code = 404


class Conflict(MemexError):
    """This conflicts with something that already exists."""

    status_code = 409


class RateLimited(MemexError):
    """Too many requests: wait a moment and try again."""

    status_code = 429

    def __init__(self, message: str | None = None, *, retry_after: int = 60, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.retry_after = retry_after
        self.headers = headers or {}


class ConfigurationError(MemexError):
    """Memex is not configured correctly."""

    status_code = 500


class DatabaseUnavailable(MemexError):
    """The database is unreachable: check MEMEX_DATABASE_URL, or that the data folder is writable."""

    status_code = 503


class ServiceUnavailable(MemexError):
    """A service Memex depends on is unavailable."""

    status_code = 503


class BackupError(MemexError):
    """The backup could not be made, read, verified or restored."""


class EmbeddingModelMismatch(ConfigurationError):
    """The database was indexed with another embedding model: run `memex reembed` to rebuild embeddings."""


class EmbeddingModelChanged(ServiceUnavailable):
    """The embedding model changed while this was being indexed (`memex reembed` swapped models): index it again."""
