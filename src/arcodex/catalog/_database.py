"""A catalog's database as a whole: its schema version, upgrading it, and copying it.

What ``arcodex db status|upgrade|copy`` call. Each takes a database URL
(``sqlite:///PATH``, ``postgresql://…``) or a catalog directory, meaning the
database its ``arcodex.yaml`` names (``database_url``; by default the
catalog's own ``catalog.sqlite``).

A copy moves everything a database holds: every record (deleted ones too,
with the status each had before), their artifacts, the operations, the
registered JSON Schemas (the metadata fields are derived from the records), and
the server's users and API tokens (each token as its hash, so a token made
before the copy authenticates against it; no secret is read or shown). It
refuses a destination holding anything, and checks what it wrote by counts and
by :func:`catalog_digest` computed on both sides.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from arcodex.backends import CatalogBackend, SchemaInfo, admin_open, open_backend
from arcodex.backends._users_sql import UserTables
from arcodex.catalog._catalog import DB_FILE
from arcodex.catalog._config import CONFIG_FILE, CatalogConfig, load_config
from arcodex.errors import ConflictError, StorageError, ValidationError
from arcodex.model import RECORD_STATUSES, Condition, Operation, Query, Record

__all__ = [
    "CatalogDigest",
    "CopyResult",
    "DatabaseStatus",
    "UpgradeResult",
    "catalog_digest",
    "copy_database",
    "database_status",
    "database_url",
    "upgrade_database",
]

#: ``progress(stage, done, total)``: records, operations, schemas, users, verify.
Progress = Callable[[str, int, int], None]
_SCHEMES = ("sqlite", "postgresql", "postgres")
_EVERYTHING = Query(conditions=[Condition(field="status", op="in", value=list(RECORD_STATUSES))])


def database_url(target: str | os.PathLike[str]) -> str:
    """The database meant by ``target``: a URL as given, or a catalog directory's."""
    return _resolve(target)[0]


def _resolve(target: str | os.PathLike[str]) -> tuple[str, CatalogConfig]:
    """The database URL of ``target`` and the settings to open it with (a catalog's own,
    else the environment's: the password setting, the busy timeout)."""
    text = os.fspath(target)
    if "://" in text or text.startswith("sqlite:"):
        scheme = text.partition(":")[0].lower()
        if scheme not in _SCHEMES:
            raise ValidationError(
                f"unsupported database URL scheme {scheme!r} in {_shown(text)}; "
                "use sqlite:///PATH or postgresql://USER@HOST/DATABASE"
            )
        return text, CatalogConfig()
    root = Path(text).expanduser().resolve()
    if not (root / CONFIG_FILE).is_file():
        raise ValidationError(
            f"{text} is neither a database URL (sqlite:///PATH, postgresql://USER@HOST/DB) nor "
            f"a catalog directory (no {CONFIG_FILE} in it); give one of those"
        )
    config = load_config(root)
    return config.database_url or f"sqlite:///{root / DB_FILE}", config


def _shown(url: str) -> str:
    """``url`` without a password (should someone have written one into it)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "the URL given"
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", "@", 1)
    return parts._replace(netloc=netloc).geturl()


@contextmanager
def _opened(
    target: str | os.PathLike[str], *, create: bool = False, admin: bool = False
) -> Iterator[CatalogBackend]:
    url, config = _resolve(target)
    if url.startswith("sqlite:") and create:
        Path(url.removeprefix("sqlite:///")).expanduser().parent.mkdir(parents=True, exist_ok=True)
    if admin:
        with admin_open():
            backend = open_backend(url, create=create, config=config)
    else:
        backend = open_backend(url, create=create, config=config)
    try:
        yield backend
    finally:
        backend.close()


# -- status and upgrade ------------------------------------------------------------------


@dataclass(frozen=True)
class DatabaseStatus:
    """``arcodex db status``: where the database is, its schema beside the code's, counts."""

    url: str
    schema: SchemaInfo
    records: int | None
    records_by_status: dict[str, int] = field(default_factory=dict)
    operations: int | None = None
    schemas: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with stable keys."""
        out = asdict(self)
        out["schema"] = self.schema.to_dict()
        return out


def database_status(target: str | os.PathLike[str]) -> DatabaseStatus:
    """The schema version and contents of a database (an older schema is shown, not
    upgraded); counts the older schema cannot give are None."""
    with _opened(target, admin=True) as backend:
        info = backend.schema_info()
        records: int | None = None
        by_status: dict[str, int] = {}
        operations = schemas = None
        try:
            by_status = backend.stats().records_by_status
            records = sum(by_status.values())
            operations = sum(1 for _ in backend.all_operations())
            schemas = len(backend.schema_keys())
        except StorageError:
            if info.up_to_date:
                raise
        return DatabaseStatus(backend.url, info, records, by_status, operations, schemas)


@dataclass(frozen=True)
class UpgradeResult:
    """``arcodex db upgrade``: the migrations applied (or, in a dry run, to apply)."""

    url: str
    version_before: int
    version: int
    migrations: list[str]
    dry_run: bool

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with stable keys."""
        return asdict(self)


def upgrade_database(target: str | os.PathLike[str], *, dry_run: bool = False) -> UpgradeResult:
    """Bring a database's schema up to this arcodex's, in one transaction; with
    ``dry_run``, only say which migrations that would apply."""
    with _opened(target, admin=True) as backend:
        before = backend.schema_info().version
        applied = backend.upgrade(dry_run=dry_run)
        after = backend.schema_info().version
        return UpgradeResult(backend.url, before, after, applied, dry_run)


# -- the digest of a whole catalog ---------------------------------------------------------


@dataclass(frozen=True)
class CatalogDigest:
    """Counts and a sha256 of everything a database holds."""

    records: int
    operations: int
    schemas: int
    sha256: str
    users: int = 0
    tokens: int = 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with stable keys."""
        return asdict(self)


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


class _Digest:
    """Item hashes gathered in any order; :meth:`result` sorts and hashes them together."""

    def __init__(self) -> None:
        self.items: list[bytes] = []
        self.records = self.operations = self.schemas = self.users = self.tokens = 0

    def _add(self, value: Any) -> None:
        self.items.append(hashlib.sha256(_canonical(value)).digest())

    def record(self, record: Record, prior: str | None) -> None:
        self._add({"record": record.model_dump(mode="json"), "prior_status": prior})
        self.records += 1

    def operation(self, operation: Operation) -> None:
        self._add({"operation": operation.model_dump(mode="json")})
        self.operations += 1

    def schema(self, key: str, text: str | None) -> None:
        self._add({"schema": key, "document": json.loads(text or "null")})
        self.schemas += 1

    def user(self, row: Sequence[Any]) -> None:
        self._add({"user": list(row)})
        self.users += 1

    def token(self, row: Sequence[Any]) -> None:
        self._add({"token": list(row)})  # the row holds the token's hash, never its secret
        self.tokens += 1

    def result(self) -> CatalogDigest:
        whole = hashlib.sha256()
        for item in sorted(self.items):
            whole.update(item)
        return CatalogDigest(
            self.records,
            self.operations,
            self.schemas,
            whole.hexdigest(),
            self.users,
            self.tokens,
        )


def catalog_digest(
    backend: CatalogBackend, *, batch: int = 1000, progress: Progress | None = None
) -> CatalogDigest:
    """The sha256 over the sorted canonical JSON of every record with its prior status,
    every operation, every schema, every user and every token row (the same content
    gives the same digest on any backend, whatever order it stores things in).

    Each item's canonical JSON is hashed alone and the sorted item hashes are hashed
    together, so that a million records need 32 MB, not their whole text, to sort.
    """
    digest = _Digest()
    total = backend.count(_EVERYTHING)
    for rows in backend.export_records(batch=batch):
        for record, prior in rows:
            digest.record(record, prior)
        if progress is not None:
            progress("verify", digest.records, total)
    for operation in backend.all_operations():
        digest.operation(operation)
    for key in backend.schema_keys():
        digest.schema(key, backend.schema_text(key))
    if isinstance(backend, UserTables):
        for user in backend.user_rows():
            digest.user(user)
        for token in backend.token_rows():
            digest.token(token)
    return digest.result()


# -- copy ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CopyResult:
    """``arcodex db copy``: what was copied where, and the digest both sides agree on."""

    source: str
    destination: str
    records: int
    operations: int
    schemas: int
    sha256: str
    seconds: float
    users: int = 0
    tokens: int = 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with stable keys."""
        return asdict(self)


def copy_database(
    source: str | os.PathLike[str],
    destination: str | os.PathLike[str],
    *,
    batch: int = 1000,
    progress: Progress | None = None,
) -> CopyResult:
    """Copy every record (deleted ones too, with their prior status), operation,
    schema, user and API token (its hash, as stored) of ``source`` into the empty
    database ``destination`` (made when missing), then check both by counts and
    :func:`catalog_digest`.

    Raises ConflictError when the destination holds anything, and StorageError when
    what was written does not match the source (the destination then holds a partial
    copy to empty before trying again). The catalogs' ``arcodex.yaml`` files are left
    as they are: point a catalog at the copy with ``database_url``.
    """
    import time

    started = time.perf_counter()
    src_url, dest_url = database_url(source), database_url(destination)
    if src_url == dest_url:
        raise ValidationError(
            f"{_shown(src_url)} is both source and destination; give two databases"
        )
    with _opened(source) as src, _opened(destination, create=True) as dest:
        if not dest.is_empty():
            raise ConflictError(_not_empty(dest))
        total = src.count(_EVERYTHING)
        # The source's digest is taken from what was read and written, in the same pass.
        read = _Digest()
        for rows in src.export_records(batch=batch):
            dest.import_records(rows)
            for record, prior in rows:
                read.record(record, prior)
            if progress is not None:
                progress("records", read.records, total)
        for operation in src.all_operations():
            dest.save_operation(operation)
            read.operation(operation)
            if progress is not None and read.operations % 100 == 0:
                progress("operations", read.operations, read.operations)
        keys = src.schema_keys()
        for key in keys:
            text = src.schema_text(key)
            if text is not None:
                dest.put_schema(key, text)
            read.schema(key, text)
            if progress is not None:
                progress("schemas", read.schemas, len(keys))
        _copy_users(src, dest, read, progress)
        want = read.result()
        got = catalog_digest(dest, batch=batch, progress=progress)
        if got != want:
            raise StorageError(
                f"the copy in {dest.url} does not match {src.url}: {_difference(want, got)}; "
                "empty the destination and copy again"
            )
        return CopyResult(
            src.url,
            dest.url,
            want.records,
            want.operations,
            want.schemas,
            want.sha256,
            round(time.perf_counter() - started, 3),
            want.users,
            want.tokens,
        )


def _copy_users(
    src: CatalogBackend, dest: CatalogBackend, read: _Digest, progress: Progress | None
) -> None:
    """The users, then their tokens (which name them), row for row: a token is its hash."""
    if not isinstance(src, UserTables):
        return
    if not isinstance(dest, UserTables):
        raise ValidationError(
            f"{dest.url} keeps no users, and {src.url} has them; copy into sqlite or postgres"
        )
    users, tokens = src.user_rows(), src.token_rows()
    for user in users:
        if not dest.user_insert(user):
            raise ConflictError(
                f"{dest.url} already has user {user[0]!r}; copy only into an empty catalog"
            )
        read.user(user)
    for token in tokens:
        dest.token_insert(token)
        read.token(token)
    if progress is not None:
        progress("users", read.users + read.tokens, len(users) + len(tokens))


def _not_empty(dest: CatalogBackend) -> str:
    records = dest.count(_EVERYTHING)
    operations = 0 if records else sum(1 for _ in dest.all_operations())
    schemas = 0 if records or operations else len(dest.schema_keys())
    users = 0
    if not (records or operations or schemas) and isinstance(dest, UserTables):
        users = len(dest.user_rows())
    if records:
        what = f"{records} record{'s' * (records != 1)}"
    elif operations:
        what = f"{operations} operation{'s' * (operations != 1)}"
    elif schemas:
        what = f"{schemas} schema{'s' * (schemas != 1)}"
    else:
        what = f"{users} user{'s' * (users != 1)}"
    return f"{dest.url} holds {what}; copy only into an empty catalog"


def _difference(want: CatalogDigest, got: CatalogDigest) -> str:
    parts = [
        f"{name} {getattr(got, name)} instead of {getattr(want, name)}"
        for name in ("records", "operations", "schemas", "users", "tokens")
        if getattr(got, name) != getattr(want, name)
    ]
    return (
        ", ".join(parts)
        or f"same counts but content digest {got.sha256[:12]} instead of {want.sha256[:12]}"
    )
