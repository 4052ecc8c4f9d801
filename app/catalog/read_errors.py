"""What kind of failure stopped a catalog read, from whatever the driver raised.

A wrong password, a missing database and a refused connection all surface as a driver's
``OperationalError``; their kinds need different fixes, so they are told apart here by the
codes the servers send (PostgreSQL SQLSTATEs, MySQL/MariaDB error numbers) and by the socket
errors under them. Only the kind leaves this module: a driver's message may name the host,
the user or a statement.
"""

from __future__ import annotations

from collections.abc import Iterator
from enum import StrEnum

__all__ = ["ReadErrorKind", "kind_of"]


class ReadErrorKind(StrEnum):
    """Why a source's catalog could not be read."""

    AUTHENTICATION_FAILED = "authentication failed"
    DATABASE_MISSING = "database missing"
    SCHEMA_MISSING = "schema missing"
    PERMISSION_DENIED = "permission denied"
    UNREACHABLE = "unreachable"
    TIMED_OUT = "timed out"
    MISCONFIGURED = "misconfigured"  # the source's URL does not parse, or its dialect is not installed
    ARTIFACTS_INVALID = "artifacts invalid"  # the source's dbt artifacts are unreadable or do not match
    FAILED = "failed"  # anything else: a catalog query failed


_SQLSTATES = {
    "28P01": ReadErrorKind.AUTHENTICATION_FAILED,  # invalid_password
    "28000": ReadErrorKind.AUTHENTICATION_FAILED,  # invalid_authorization_specification (MySQL too)
    "3D000": ReadErrorKind.DATABASE_MISSING,  # invalid_catalog_name
    "3F000": ReadErrorKind.SCHEMA_MISSING,  # invalid_schema_name
    "42501": ReadErrorKind.PERMISSION_DENIED,  # insufficient_privilege
    "57014": ReadErrorKind.TIMED_OUT,  # query_canceled (statement_timeout)
}
_MYSQL_CODES = {
    1045: ReadErrorKind.AUTHENTICATION_FAILED,  # ER_ACCESS_DENIED_ERROR
    1698: ReadErrorKind.AUTHENTICATION_FAILED,  # ER_ACCESS_DENIED_NO_PASSWORD_ERROR
    1049: ReadErrorKind.DATABASE_MISSING,  # ER_BAD_DB_ERROR
    1044: ReadErrorKind.PERMISSION_DENIED,  # ER_DBACCESS_DENIED_ERROR
    1142: ReadErrorKind.PERMISSION_DENIED,  # ER_TABLEACCESS_DENIED_ERROR
    1227: ReadErrorKind.PERMISSION_DENIED,  # ER_SPECIFIC_ACCESS_DENIED_ERROR
    2002: ReadErrorKind.UNREACHABLE,  # CR_CONNECTION_ERROR (socket)
    2003: ReadErrorKind.UNREACHABLE,  # CR_CONN_HOST_ERROR
    2005: ReadErrorKind.UNREACHABLE,  # CR_UNKNOWN_HOST
    2006: ReadErrorKind.UNREACHABLE,  # CR_SERVER_GONE_ERROR
    2013: ReadErrorKind.UNREACHABLE,  # CR_SERVER_LOST
}


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception, what SQLAlchemy wrapped (``orig``), and their causes, each once."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        for inner in (getattr(current, "orig", None), current.__cause__, current.__context__):
            if isinstance(inner, BaseException):
                todo.append(inner)


def _coded(exc: BaseException) -> ReadErrorKind | None:
    sqlstate = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
    if isinstance(sqlstate, str):
        if sqlstate in _SQLSTATES:
            return _SQLSTATES[sqlstate]
        if sqlstate.startswith("08"):  # connection_exception
            return ReadErrorKind.UNREACHABLE
    code = exc.args[0] if exc.args else None
    if isinstance(code, int) and code in _MYSQL_CODES:
        return _MYSQL_CODES[code]
    if isinstance(code, str) and code.startswith("unable to open database file"):  # SQLite
        return ReadErrorKind.DATABASE_MISSING
    return None


def kind_of(exc: BaseException) -> ReadErrorKind:
    """The kind of a driver's, SQLAlchemy's or the socket's exception (``FAILED`` if unknown)."""
    chain = list(_chain(exc))
    for current in chain:  # a server's own code says most
        kind = _coded(current)
        if kind is not None:
            return kind
    for current in chain:
        if isinstance(current, TimeoutError):
            return ReadErrorKind.TIMED_OUT
        if isinstance(current, OSError):  # refused, reset, no route, unknown host
            return ReadErrorKind.UNREACHABLE
    return ReadErrorKind.FAILED
