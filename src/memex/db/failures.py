"""Database failures: which errors mean the database could not serve (rather than a bug), and what to say.

The API answers them 503 with Retry-After, the CLI exits 1, and streams (chat, MCP tools) end with the same
sentence, wherever the error surfaced: in SQLAlchemy, in psycopg, or wrapped by procrastinate.
"""

from __future__ import annotations

import psycopg
import sqlalchemy.exc
from procrastinate.exceptions import ConnectorException

from memex.errors import DatabaseUnavailable

# Down, restarting, unreachable, out of connections, the connection dropped mid-request, or a transient conflict.
DATABASE_ERRORS = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
)
RETRY_AFTER_SECONDS = 5
UNAVAILABLE = "the database is unavailable: try again in a few seconds"
CONFLICT = "the database could not complete the request (a conflict or timeout): try again in a few seconds"
# SQLSTATE classes of a database that is away: connection exceptions, shutdown or start-up, no such database,
# too many connections. No SQLSTATE at all means no server answered.
_AWAY = ("08", "57P", "3D000", "53300")


def database_error(exc: BaseException) -> BaseException | None:
    """The database failure that `exc` is or wraps, or None when it is something else (a bug)."""
    if isinstance(exc, ConnectorException) and exc.__cause__ is not None:
        return database_error(exc.__cause__)  # procrastinate wraps psycopg's errors
    if isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        return database_error(exc.exceptions[0])  # a task group's only failure
    if isinstance(exc, DATABASE_ERRORS):
        return exc
    if isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated:
        return exc  # SQLAlchemy saw the connection die, whatever class psycopg gave the error
    return None


def detail(exc: BaseException) -> str:
    """What a caller reads about a database failure: away, or a conflict worth retrying."""
    orig = exc.orig if isinstance(exc, sqlalchemy.exc.DBAPIError) else exc
    sqlstate = getattr(orig, "sqlstate", None)
    if isinstance(exc, sqlalchemy.exc.TimeoutError) or sqlstate is None or sqlstate.startswith(_AWAY):
        return UNAVAILABLE
    if isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated:
        return UNAVAILABLE
    return CONFLICT


def unavailable(exc: BaseException) -> DatabaseUnavailable | None:
    """`exc` as the Memex error to report, when it is a database failure; raise it `from exc`."""
    found = database_error(exc)
    if found is None:
        return None
    error = DatabaseUnavailable(detail(found))
    error.__cause__ = exc
    return error


def first_line(exc: BaseException) -> str:
    """The driver's own first line about a failure (it names the host and the error, never the password)."""
    found = database_error(exc) or exc
    cause = found.orig if isinstance(found, sqlalchemy.exc.DBAPIError) and found.orig is not None else found
    return next((line.strip() for line in str(cause).splitlines() if line.strip()), type(cause).__name__)
