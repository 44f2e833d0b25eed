"""Connections to a PostgreSQL catalog: URL, password, pool, transactions, errors.

The password never travels in the URL: libpq reads ``PGPASSWORD`` or
``~/.pgpass`` itself, and an explicit one (``ARCODEX_DATABASE_PASSWORD``, or
split off an ``ARCODEX_DATABASE_URL``) is kept in memory and passed to libpq
as a separate keyword, never in ``url``, ``conninfo`` or an error message.
psycopg errors become arcodex errors here, one line each, without secrets.
"""

from __future__ import annotations

import os
import re
import threading
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from arcodex.backends._postgres_url import split_password
from arcodex.errors import (
    AuthError,
    ConflictError,
    LockTimeoutError,
    NotACatalogError,
    QueryError,
    StorageError,
    ValidationError,
)

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import ConnectionPool

__all__ = ["PostgresConnection", "parse_postgres_url"]

_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_DEFAULT_CONNECT_TIMEOUT = 5
#: Pools of processes this one was forked from: never used, never closed, kept from the
#: garbage collector (closing them would end the parent's sessions).
_INHERITED: list[Any] = []


def parse_postgres_url(url: str) -> tuple[dict[str, Any], str | None, str]:
    """libpq parameters (without the password), the password if the URL has one, and the
    schema (``schema=NAME``, default ``public``)."""
    url, password = split_password(url)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - reading it checks it
    except ValueError as exc:
        raise ValidationError(
            f"bad PostgreSQL URL ({_scrub(str(exc), password)});"
            " write postgresql://USER@HOST:PORT/DATABASE?schema=NAME"
        ) from None
    query = parse_qsl(parts.query, keep_blank_values=True)
    schemas = [v for k, v in query if k == "schema"]
    schema = schemas[-1] if schemas else "public"
    if not _SCHEMA_RE.match(schema):
        raise ValidationError(
            f"bad schema {schema!r} in the PostgreSQL URL; use lower-case letters, digits and _"
        )
    rest = [(k, v) for k, v in query if k != "schema"]
    plain = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(rest), ""))
    from psycopg.conninfo import conninfo_to_dict

    try:
        params = conninfo_to_dict(plain)
    except Exception as exc:  # psycopg.ProgrammingError: libpq could not parse it
        text = _scrub(_first_line(str(exc)), password)
        raise ValidationError(
            f"bad PostgreSQL URL ({text}); write postgresql://USER@HOST:PORT/DATABASE?schema=NAME"
        ) from None
    params.pop("password", None)
    return params, password, schema


def _pool_class() -> type[ConnectionPool]:
    """psycopg's pool, drawing its reconnection jitter from a generator of its own.

    The stock pool calls the global ``random`` from its worker threads, which moves the
    state that seeded programs (and hypothesis, which refuses it) rely on.
    """
    global _POOL_CLASS
    if _POOL_CLASS is None:
        import random

        from psycopg_pool import ConnectionPool

        jitter = random.Random()

        class _Pool(ConnectionPool):
            @classmethod
            def _jitter(cls, value: float, min_pc: float, max_pc: float) -> float:
                return value * (1.0 + ((max_pc - min_pc) * jitter.random()) + min_pc)

        _POOL_CLASS = _Pool
    return _POOL_CLASS


_POOL_CLASS: type[Any] | None = None


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else "no message"


def _scrub(text: str, secret: str | None) -> str:
    if secret:
        text = text.replace(secret, "***")
    return text


class PostgresConnection:
    """Where a PostgreSQL catalog is and how to reach it: ``url`` (no credentials),
    ``schema``, ``conninfo`` (no password), a pool per process, ``_tx`` and ``_q``."""

    def __init__(
        self, url: str, *, password: str | None, busy_timeout: float, pool_size: int
    ) -> None:
        params, url_password, schema = parse_postgres_url(url)
        self.schema = schema
        self.busy_timeout = busy_timeout
        self._password = url_password or password or None
        params.setdefault("connect_timeout", str(_DEFAULT_CONNECT_TIMEOUT))
        params.setdefault("application_name", "arcodex")
        options = params.get("options", "")
        lock_ms = max(1, int(busy_timeout * 1000))
        params["options"] = f"{options} -c search_path={schema} -c lock_timeout={lock_ms}".strip()
        from psycopg.conninfo import make_conninfo

        self._params = params
        self.conninfo = make_conninfo(**params)
        self.host = str(params.get("host") or "localhost")
        self.port = str(params.get("port") or "5432")
        self.database = str(params.get("dbname") or params.get("user") or "")
        self.user = str(params.get("user") or os.environ.get("PGUSER") or _login())
        self.url = (
            f"postgresql://{quote(self.user)}@{self.host}:{self.port}/{quote(self.database)}"
            f"?schema={schema}"
        )
        self._pool_size = max(2, pool_size)
        self._pool: ConnectionPool | None = None
        self._pool_pid = os.getpid()
        self._pool_lock = threading.Lock()

    # -- connections -------------------------------------------------------------------

    def _connect_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``psycopg.connect(self.conninfo, …)``: the password, if
        arcodex holds one (libpq finds PGPASSWORD and ~/.pgpass itself). Never log them."""
        return {"password": self._password} if self._password else {}

    def _connect(self) -> psycopg.Connection[Any]:
        import psycopg

        try:
            return psycopg.connect(self.conninfo, autocommit=True, **self._connect_kwargs())
        except psycopg.Error as exc:
            raise self._translate(exc) from exc

    @property
    def pool(self) -> ConnectionPool:
        """This process's connection pool (opened on first use)."""
        with self._pool_lock:
            if self._pool is not None and self._pool_pid != os.getpid():
                _INHERITED.append(self._pool)
                self._pool = None
            if self._pool is None:
                pool: ConnectionPool = _pool_class()(
                    self.conninfo,
                    kwargs={"autocommit": True, **self._connect_kwargs()},
                    min_size=1,
                    max_size=self._pool_size,
                    open=False,
                    timeout=max(self.busy_timeout, 10.0),
                    name=f"arcodex-{self.schema}",
                )
                pool.open(wait=False)
                self._pool = pool
                self._pool_pid = os.getpid()
                # A catalog nobody closed must not leave open connections to be collected.
                weakref.finalize(self, _close_pool, pool, self._pool_pid)
            return self._pool

    @contextmanager
    def _conn(self) -> Iterator[psycopg.Connection[Any]]:
        import psycopg
        from psycopg_pool import PoolTimeout

        try:
            with self.pool.connection() as conn:
                yield conn
        except PoolTimeout as exc:
            raise StorageError(
                f"no PostgreSQL connection to {self.host}:{self.port} within"
                f" {max(self.busy_timeout, 10.0):g}s (the server is unreachable, or all"
                f" {self._pool_size} connections of this process are busy); is the server running?"
            ) from exc
        except psycopg.Error as exc:
            raise self._translate(exc) from exc

    @contextmanager
    def _tx(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection inside a transaction (search_path: the catalog's schema);
        committed on success, rolled back on error, errors translated."""
        with self._conn() as conn, conn.transaction():
            yield conn

    def _q(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """One read (errors translated)."""
        with self._conn() as conn:
            cur = conn.execute(sql, params)
            return cur.fetchall() if cur.description is not None else []

    def close(self) -> None:
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None and self._pool_pid == os.getpid():
            pool.close(timeout=5.0)

    def _where(self) -> str:
        return f"{self.host}:{self.port}"

    def _translate(self, exc: Exception) -> Exception:
        """An arcodex error for a psycopg one: one line, no password, no conninfo."""
        import psycopg
        from psycopg import errors as pe

        text = _scrub(_first_line(str(exc)), self._password)
        if isinstance(exc, pe.UniqueViolation):
            return ConflictError(f"{_duplicate(exc)} already exists; choose another id")
        if isinstance(exc, pe.LockNotAvailable | pe.DeadlockDetected | pe.SerializationFailure):
            return LockTimeoutError(
                f"PostgreSQL catalog {self.url}: a record stayed locked by another writer"
                f" ({text}) for {self.busy_timeout:g}s; retry, or raise busy_timeout in arcodex.yaml"
            )
        if isinstance(exc, pe.QueryCanceled):
            return LockTimeoutError(f"PostgreSQL catalog {self.url}: {text}; retry")
        if isinstance(exc, pe.InvalidRegularExpression):
            return QueryError(f"bad regular expression ({text}); fix the pattern")
        if isinstance(exc, pe.InsufficientPrivilege):
            return AuthError(
                f"PostgreSQL user {self.user} may not do this on {self.url} ({text});"
                " ask the database owner for privileges"
            )
        state = getattr(exc, "sqlstate", None) or ""
        if isinstance(exc, psycopg.OperationalError) and (
            not state or state.startswith(("08", "28", "3D"))
        ):
            return self._connect_error(text)
        return StorageError(f"PostgreSQL catalog {self.url} failed: {text}")

    def _connect_error(self, text: str) -> Exception:
        low = text.lower()
        where = self._where()
        if (
            "authentication failed" in low
            or "no password supplied" in low
            or ("role" in low and "does not exist" in low)
        ):
            return AuthError(
                f"PostgreSQL refused user {self.user} on {where} (authentication failed);"
                " check PGPASSWORD, ~/.pgpass or ARCODEX_DATABASE_PASSWORD"
            )
        if "database" in low and "does not exist" in low:
            return NotACatalogError(
                f"database {self.database} does not exist on {where};"
                f" create it (createdb {self.database}) or fix the URL"
            )
        if "timeout expired" in low:
            reason = f"no answer within {self._params.get('connect_timeout')}s"
        elif "refused" in low:
            reason = "connection refused"
        elif "translate host name" in low or "name or service not known" in low:
            reason = "unknown host"
        else:
            reason = text
        return StorageError(
            f"cannot reach PostgreSQL at {where} ({reason}); is the server running?"
        )


def _duplicate(exc: Any) -> str:
    """What a unique violation names: the record or artifact id already taken."""
    detail = getattr(getattr(exc, "diag", None), "message_detail", None) or ""
    constraint = getattr(getattr(exc, "diag", None), "constraint_name", None) or ""
    match = re.search(r"\)=\((.*)\) already exists", detail)
    value = match.group(1) if match else "?"
    if constraint.startswith("artifacts"):
        return f"artifact id {value} (an artifact id is used twice; give each artifact its own id)"
    return f"record id {value}"


def _login() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _close_pool(pool: Any, pid: int) -> None:
    """Close a forgotten pool in the process that opened it (never a forked child's copy)."""
    if os.getpid() == pid and not pool.closed:
        pool.close(timeout=1.0)
