"""The Catalog service: the one Python API the CLI and the server call."""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from pydantic import BaseModel

from arcodex import __version__
from arcodex.backends import BackendStats, CatalogBackend, Page, open_backend
from arcodex.catalog._config import CONFIG_FILE, CatalogConfig, load_config
from arcodex.catalog._doctor import DoctorReport, Recovery, _where, diagnose, doctor_fix
from arcodex.catalog._doctor import recover as recover_operations
from arcodex.catalog._duplicates import Addition, refuse_duplicates
from arcodex.catalog._events import EventLog
from arcodex.catalog._hooks import HookContext, HookRegistry, HookResult
from arcodex.catalog._journal import Journal, UnitOfWork
from arcodex.catalog._schemas import Policy, SchemaRegistry, SchemaResult
from arcodex.catalog._support import (
    bare,
    check_readable,
    check_uri,
    current_user,
    dir_size,
    exists,
    file_hash,
    merge,
    metadata_of,
    profile_secrets,
    pydantic_message,
    schema_parts,
    set_path,
    undo_write,
    unset_path,
)
from arcodex.errors import (
    ArcodexError,
    CatalogExistsError,
    ConflictError,
    NotACatalogError,
    NotFoundError,
    StorageError,
    ValidationError,
)
from arcodex.extract import Extracted, extract_file
from arcodex.model import (
    Artifact,
    Condition,
    ExternalUri,
    FieldSummary,
    FsspecUrl,
    LocalPath,
    Operation,
    OperationError,
    Query,
    Record,
    check_metadata,
    utcnow,
)
from arcodex.plugins import registry as plugin_registry
from arcodex.storage import (
    FsspecStore,
    LocalStore,
    open_storage,
    render_path,
)

__all__ = ["ENV_CATALOG", "Catalog", "CatalogInfo", "find_catalog_root", "open_catalog"]

P = ParamSpec("P")
R = TypeVar("R")

DB_FILE = "catalog.sqlite"
STATE_DIR = "state"
LOG_DIR = "logs"
JOURNAL_DIR = "journal"
SCHEMA_DIR = "schemas"
ENV_CATALOG = "ARCODEX_CATALOG"


@dataclass(frozen=True)
class CatalogInfo:
    """A curated summary of a catalog (``arcodex info``)."""

    root: str
    backend: str
    version: str
    records: int
    records_by_kind: dict[str, int]
    records_by_status: dict[str, int]
    artifacts_by_format: dict[str, int]
    artifacts_by_status: dict[str, int]
    profiles: dict[str, dict[str, Any]]
    default_profile: str
    schema_policy: str
    schemas: list[str]
    recent_failed_operations: list[dict[str, Any]]
    state_dir: str
    event_log: str
    extra: dict[str, Any] = field(default_factory=dict)
    #: The installed plugins: name, version and status (loaded, failed, disabled).
    plugins: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with stable keys."""
        return asdict(self)


def _refusals_logged(
    action: str,
) -> Callable[[Callable[Concatenate[Catalog, P], R]], Callable[Concatenate[Catalog, P], R]]:
    """Log a ValidationError the method raises (bad input is refused, and logged)."""

    def wrap(fn: Callable[Concatenate[Catalog, P], R]) -> Callable[Concatenate[Catalog, P], R]:
        def run(self: Catalog, /, *args: P.args, **kwargs: P.kwargs) -> R:
            user = kwargs.get("user")
            with self._checking(action, user if isinstance(user, str) else current_user()):
                return fn(self, *args, **kwargs)

        functools.update_wrapper(run, fn)
        return run

    return wrap


def find_catalog_root(start: str | os.PathLike[str] | None = None) -> Path:
    """The catalog a command means: ``start`` if given, else ``$ARCODEX_CATALOG``,
    else the nearest directory upwards from the current one holding ``arcodex.yaml``."""
    if start is not None:
        return Path(start).expanduser().resolve()
    env = os.environ.get(ENV_CATALOG)
    if env:
        return Path(env).expanduser().resolve()
    here = Path.cwd().resolve()
    for directory in (here, *here.parents):
        if (directory / CONFIG_FILE).is_file():
            return directory
    raise NotACatalogError(
        f"no arcodex catalog in {here} or above; run `arcodex init PATH`, "
        f"pass --catalog PATH or set {ENV_CATALOG}"
    )


def open_catalog(path_or_url: str | os.PathLike[str] | None = None) -> Catalog:
    """Open an existing catalog: a directory, or None to search as the CLI does."""
    root = find_catalog_root(path_or_url)
    env = os.environ.get(ENV_CATALOG)
    if path_or_url is None and env and not (root / CONFIG_FILE).is_file():
        raise NotACatalogError(
            f"${ENV_CATALOG}={env} is not an arcodex catalog ({_not_a_catalog(root)}); "
            f"unset it, point it at a catalog, or run `arcodex init {env}` to make one there"
        )
    return Catalog.open(root)


def _not_a_catalog(root: Path) -> str:
    """Why ``root`` (which has no arcodex.yaml) is not a catalog."""
    if not root.exists():
        return "no such directory"
    if not root.is_dir():
        return "a file, not a directory"
    return f"no {CONFIG_FILE} in it"


class Catalog:
    """One arcodex catalog: records in a backend, managed files in storage profiles.

    Open one with :func:`open_catalog` or create one with :meth:`create`.
    """

    def __init__(self, root: Path, config: CatalogConfig, backend: CatalogBackend) -> None:
        self.root = root
        self.config = config
        self.backend = backend
        self.events = EventLog(root / STATE_DIR / LOG_DIR, secrets=profile_secrets(config))
        self.schemas = SchemaRegistry(root / SCHEMA_DIR)
        self.journal = Journal(root / STATE_DIR / JOURNAL_DIR)
        self.hooks = HookRegistry(self.events)
        plugin_registry().configure(config.plugins.enabled, config.plugins.allow)

    # -- lifecycle -----------------------------------------------------------

    @classmethod
    def create(
        cls, path: str | os.PathLike[str], *, config: CatalogConfig | None = None
    ) -> Catalog:
        """Make a new catalog in ``path`` (created if missing); refuses an existing catalog."""
        root = Path(path).expanduser().resolve()
        if (root / CONFIG_FILE).exists():
            raise CatalogExistsError(
                f"{root} already holds an arcodex catalog; open it, or choose another directory"
            )
        if root.exists() and not root.is_dir():
            raise ValidationError(f"{root} is a file, not a directory; choose a directory path")
        config = config or CatalogConfig()
        created_root = not root.exists()
        try:
            root.mkdir(parents=True, exist_ok=True)
            (root / STATE_DIR).mkdir(exist_ok=True)
            backend = open_backend(cls._database_url(root, config), create=True, config=config)
            # Written last: a directory is a catalog only once everything else exists.
            tmp = root / f".{CONFIG_FILE}.tmp"
            tmp.write_text(config.to_yaml(), encoding="utf-8")
            os.replace(tmp, root / CONFIG_FILE)
        except OSError as exc:
            if created_root:
                shutil.rmtree(root, ignore_errors=True)
            raise StorageError(
                f"could not create a catalog in {root}: {exc.strerror or exc}"
            ) from exc
        return cls(root, config, backend)

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Catalog:
        """Open the catalog in directory ``path``."""
        root = Path(path).expanduser().resolve()
        if not (root / CONFIG_FILE).is_file():
            raise NotACatalogError(
                f"{root} is not an arcodex catalog ({_not_a_catalog(root)}); "
                f"run `arcodex init {root}` to make one, or pass the right --catalog"
            )
        config = load_config(root)
        backend = open_backend(cls._database_url(root, config), create=False, config=config)
        return cls(root, config, backend)

    @staticmethod
    def _database_url(root: Path, config: CatalogConfig) -> str:
        return config.database_url or f"sqlite:///{root / DB_FILE}"

    def close(self) -> None:
        """Release the backend's connections."""
        self.backend.close()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Catalog({str(self.root)!r}, backend={self.backend.url!r})"

    # -- storage ---------------------------------------------------------------

    def _store(self, profile: str | None = None) -> tuple[LocalStore | FsspecStore, str]:
        """The storage of a profile (default: the catalog's) and its path template."""
        name = profile or self.config.default_profile
        try:
            prof = self.config.profiles[name]
        except KeyError:
            known = ", ".join(sorted(self.config.profiles)) or "none"
            raise NotFoundError(
                f"no storage profile {name!r} (known: {known}); add it to {CONFIG_FILE}"
            ) from None
        return open_storage(name, prof, self.root), prof.path_template

    def storage(self, profile: str | None = None) -> LocalStore | FsspecStore:
        """The storage of a profile (default: the catalog's), to read or write objects."""
        return self._store(profile)[0]

    def _delete_managed(self, artifact: Artifact) -> None:
        """Remove an object arcodex wrote (never anything else)."""
        if not artifact.managed:
            return
        loc = artifact.locator
        if isinstance(loc, LocalPath):
            path = Path(self.locate(artifact))
            with suppress(FileNotFoundError):
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink()
        elif isinstance(loc, FsspecUrl) and loc.profile:
            store, _ = self._store(loc.profile)
            key = store.key_of(loc.url) if isinstance(store, FsspecStore) else None
            if key is None:
                raise StorageError(
                    f"{loc.url} is not under storage profile {loc.profile!r} any more; "
                    "remove it by hand if it should go"
                )
            store.delete(key)

    # -- adding ------------------------------------------------------------------

    def add_file(
        self,
        path: str | os.PathLike[str],
        *,
        kind: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        tags: Iterable[str] = (),
        title: str | None = None,
        description: str | None = None,
        record_id: str | None = None,
        in_place: bool = False,
        extract: bool = True,
        profile: str | None = None,
        schema: str | None = None,
        schema_policy: Policy | None = None,
        require_metadata: bool = False,
        allow_duplicate: bool = False,
        user: str | None = None,
    ) -> Record:
        """Add one file: copied into managed storage, or registered where it is (``in_place``).

        A file the catalog holds already (same content, or the same path in place) is
        refused with the record's id unless ``allow_duplicate``.
        """
        return self.add_files(
            [path],
            kind=kind,
            metadata=metadata,
            tags=tags,
            title=title,
            description=description,
            record_ids=[record_id] if record_id else None,
            in_place=in_place,
            extract=extract,
            profile=profile,
            schema=schema,
            schema_policy=schema_policy,
            require_metadata=require_metadata,
            allow_duplicate=allow_duplicate,
            user=user,
        )[0]

    @_refusals_logged("add")
    def add_files(
        self,
        paths: Sequence[str | os.PathLike[str]],
        *,
        kind: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        tags: Iterable[str] = (),
        title: str | None = None,
        description: str | None = None,
        record_ids: Sequence[str] | None = None,
        in_place: bool = False,
        extract: bool = True,
        profile: str | None = None,
        schema: str | None = None,
        schema_policy: Policy | None = None,
        require_metadata: bool = False,
        allow_duplicate: bool = False,
        user: str | None = None,
    ) -> list[Record]:
        """Add files as one operation: every file is checked and read before anything is
        written, and either all records are added or none.

        A file the catalog holds already (same sha256, or the same path registered in
        place), or given twice, is refused (:class:`ConflictError` naming the records;
        nothing is added) unless ``allow_duplicate``.
        """
        user = user or current_user()
        files = [Path(p).expanduser() for p in paths]
        if record_ids is not None and len(record_ids) != len(files):
            raise ValidationError(
                f"{len(record_ids)} ids given for {len(files)} files; give one id per file"
            )
        for file in files:
            check_readable(file, in_place=in_place)
        tags = list(tags)
        user_meta = metadata_of(metadata)
        drafts: list[tuple[Path, Record, Extracted]] = []
        for i, file in enumerate(files):
            before = self._hook("before_metadata_extract", path=file).metadata
            found = extract_file(file, require=require_metadata) if extract else bare(file)
            for problem in found.errors:
                with suppress(ArcodexError):
                    self.events.emit(
                        "extract.failed",
                        f"metadata of {file} only partly read: {problem}",
                        level="warning",
                        user=user,
                        path=str(file),
                    )
            found.metadata = merge(merge(before, found.metadata), self._hook(
                "after_metadata_extract", path=file, metadata=found.metadata
            ).metadata)  # fmt: skip
            rec_kwargs: dict[str, Any] = {}
            if record_ids is not None:
                rec_kwargs["id"] = record_ids[i]
            merged = merge(found.metadata, user_meta)
            merged = merge(
                merged, self._hook("before_record_validate", path=file, metadata=merged).metadata
            )
            try:
                record = Record(
                    kind=kind or found.kind or "document",
                    title=title or found.metadata.get("title") or file.name,
                    description=description,
                    metadata=merged,
                    tags=tags,
                    created_by=user,
                    updated_by=user,
                    **rec_kwargs,
                )
            except ValueError as exc:
                raise ValidationError(f"cannot add {file}: {pydantic_message(exc)}") from None
            record = self._with_schema(record, schema, schema_policy, user)
            self._hook("after_record_validate", record=record, path=file)
            drafts.append((file, record, found))
        records: list[Record] = []
        with self.unit_of_work(
            "add",
            user=user,
            inputs=[str(f.resolve()) for f in files],
            parameters={"in_place": in_place, "extract": extract, "profile": profile, "kind": kind},
        ) as uow:
            uow.transition("planned", records=[r.id for _, r, _ in drafts], profile=profile)
            uow.transition("artifact_write_started")
            for file, record, found in drafts:
                locator: LocalPath | FsspecUrl
                if in_place:
                    size, sha = dir_size(file) if file.is_dir() else file_hash(file)
                    locator = LocalPath(path=str(file.resolve()))
                    managed = False
                else:
                    store, template = self._store(profile)
                    self._hook("before_path_plan", uow=uow, record=record, path=file)
                    key = render_path(
                        template,
                        {
                            "id": record.id,
                            "kind": record.kind,
                            "ext": "".join(file.suffixes[-1:]),
                            "name": file.name,
                            "stem": file.stem,
                            "metadata": record.metadata,
                        },
                    )
                    self._hook("after_path_plan", uow=uow, record=record, path=file, key=key)
                    self._hook("before_artifact_write", uow=uow, record=record, path=file, key=key)
                    key, size, sha = store.write_file(file, key)
                    undo_write(uow, store, key, profile or self.config.default_profile)
                    self._hook("after_artifact_write", uow=uow, record=record, path=file, key=key)
                    locator = store.locator(key)
                    managed = True
                artifact = Artifact(
                    role="primary",
                    locator=locator,
                    media_type=found.media_type,
                    format=found.format,
                    size_bytes=size,
                    hashes={"sha256": sha} if sha else {},
                    managed=managed,
                    metadata={
                        "source_path": str(file.resolve()),
                        "extractors": found.extractors,
                        **({"extract_errors": found.errors} if found.errors else {}),
                    },
                )
                records.append(record.model_copy(update={"artifacts": [artifact]}))
            if not allow_duplicate:
                # After the copy, which hashes the file: one read of it. A refusal rolls back.
                refuse_duplicates(
                    self.backend,
                    [
                        _addition(self.root, f, r)
                        for (f, _, _), r in zip(drafts, records, strict=True)
                    ],
                )
            uow.transition("artifact_write_succeeded")
            self._write_records(uow, records)
        return records

    @_refusals_logged("add")
    def add_bytes(
        self,
        data: bytes,
        *,
        name: str,
        kind: str = "document",
        metadata: Mapping[str, Any] | None = None,
        tags: Iterable[str] = (),
        title: str | None = None,
        description: str | None = None,
        record_id: str | None = None,
        media_type: str | None = None,
        profile: str | None = None,
        schema: str | None = None,
        schema_policy: Policy | None = None,
        user: str | None = None,
    ) -> Record:
        """Store ``data`` as a managed file called ``name`` and add a record for it."""
        user = user or current_user()
        if not name or "/" in name or name in (".", ".."):
            raise ValidationError(f"bad name {name!r}: give a file name like notes.txt")
        found = Extracted()
        from arcodex.extract import FileExtractor

        FileExtractor().extract(Path(name), found)
        try:
            record = Record(
                kind=kind,
                title=title or name,
                description=description,
                metadata=merge(found.metadata, metadata_of(metadata)),
                tags=list(tags),
                created_by=user,
                updated_by=user,
                **({"id": record_id} if record_id else {}),
            )
        except ValueError as exc:
            raise ValidationError(f"cannot add {name}: {pydantic_message(exc)}") from None
        record = self._with_schema(record, schema, schema_policy, user)
        self._hook("after_record_validate", record=record)
        store, template = self._store(profile)
        self._hook("before_path_plan", record=record)
        key = render_path(
            template,
            {
                "id": record.id,
                "kind": record.kind,
                "ext": "".join(Path(name).suffixes[-1:]),
                "name": name,
                "stem": Path(name).stem,
                "metadata": record.metadata,
            },
        )
        with self.unit_of_work(
            "add", user=user, inputs=[f"bytes:{name}"], parameters={"profile": profile}
        ) as uow:
            uow.transition("planned", records=[record.id], profile=profile)
            self._hook("after_path_plan", uow=uow, record=record, key=key)
            uow.transition("artifact_write_started")
            self._hook("before_artifact_write", uow=uow, record=record, key=key)
            key, size, sha = store.write_bytes(data, key)
            undo_write(uow, store, key, profile or self.config.default_profile)
            self._hook("after_artifact_write", uow=uow, record=record, key=key)
            artifact = Artifact(
                locator=store.locator(key),
                media_type=media_type or found.media_type,
                format=found.format,
                size_bytes=size,
                hashes={"sha256": sha},
                managed=True,
            )
            record = record.model_copy(update={"artifacts": [artifact]})
            uow.transition("artifact_write_succeeded")
            self._write_records(uow, [record])
        return record

    def add_external(
        self,
        uri: str,
        *,
        kind: str = "external",
        metadata: Mapping[str, Any] | None = None,
        tags: Iterable[str] = (),
        title: str | None = None,
        description: str | None = None,
        record_id: str | None = None,
        media_type: str | None = None,
        format: str | None = None,
        schema: str | None = None,
        schema_policy: Policy | None = None,
        allow_duplicate: bool = False,
        user: str | None = None,
    ) -> Record:
        """Register a URI arcodex does not manage; nothing is downloaded. A URI a record
        holds already is refused unless ``allow_duplicate``."""
        return self.add_externals(
            [uri],
            kind=kind,
            metadata=metadata,
            tags=tags,
            title=title,
            description=description,
            record_ids=[record_id] if record_id else None,
            media_type=media_type,
            format=format,
            schema=schema,
            schema_policy=schema_policy,
            allow_duplicate=allow_duplicate,
            user=user,
        )[0]

    @_refusals_logged("add")
    def add_externals(
        self,
        uris: Sequence[str],
        *,
        kind: str = "external",
        metadata: Mapping[str, Any] | None = None,
        tags: Iterable[str] = (),
        title: str | None = None,
        description: str | None = None,
        record_ids: Sequence[str] | None = None,
        media_type: str | None = None,
        format: str | None = None,
        schema: str | None = None,
        schema_policy: Policy | None = None,
        allow_duplicate: bool = False,
        user: str | None = None,
    ) -> list[Record]:
        """Register URIs as one operation: all are added, or none (nothing is downloaded).
        A URI a record holds already, or given twice, is refused unless ``allow_duplicate``."""
        user = user or current_user()
        if record_ids is not None and len(record_ids) != len(uris):
            raise ValidationError(
                f"{len(record_ids)} ids given for {len(uris)} URIs; give one id per URI"
            )
        tags = list(tags)
        meta = metadata_of(metadata)
        records = []
        for i, uri in enumerate(uris):
            check_uri(uri)
            try:
                records.append(
                    Record(
                        kind=kind,
                        title=title or uri,
                        description=description,
                        metadata=meta,
                        tags=tags,
                        created_by=user,
                        updated_by=user,
                        artifacts=[
                            Artifact(
                                locator=ExternalUri(uri=uri),
                                media_type=media_type,
                                format=format,
                                status="external",
                            )
                        ],
                        **({"id": record_ids[i]} if record_ids is not None else {}),
                    )
                )
            except ValueError as exc:
                raise ValidationError(f"cannot add {uri}: {pydantic_message(exc)}") from None
        records = [self._with_schema(r, schema, schema_policy, user) for r in records]
        for record in records:
            self._hook("after_record_validate", record=record)
        if not allow_duplicate:
            refuse_duplicates(self.backend, [Addition(u, locations=(u,)) for u in uris])
        with self.unit_of_work("add", user=user, inputs=list(uris)) as uow:
            uow.transition("planned", records=[r.id for r in records])
            self._write_records(uow, records)
        return records

    def add_records(self, records: Sequence[Record], *, user: str | None = None) -> list[Record]:
        """Add prepared records (their artifacts already in place) in one transaction.

        Bulk loads are not checked for duplicates (:meth:`add_files` is).
        """
        with self.unit_of_work("add", user=user, parameters={"count": len(records)}) as uow:
            uow.transition("planned", count=len(records))
            self._write_records(uow, records)
        return list(records)

    # -- reading -------------------------------------------------------------------

    def get(self, id_or_prefix: str) -> Record:
        """The record with this id, or the only one whose id starts with it."""
        try:
            return self.backend.get(id_or_prefix)
        except NotFoundError:
            pass
        matches = self.backend.ids_with_prefix(id_or_prefix, limit=6) if id_or_prefix else []
        if not matches:
            raise NotFoundError(
                f"no record matches {id_or_prefix!r}; run `arcodex search` to list ids"
            ) from None
        if len(matches) > 1:
            shown = ", ".join(matches[:5]) + (", …" if len(matches) > 5 else "")
            raise ConflictError(
                f"{id_or_prefix!r} matches several records ({shown}); give more characters of the id"
            )
        return self.backend.get(matches[0])

    def path(self, id_or_prefix: str, role: str = "primary") -> str:
        """Where the ``role`` artifact of a record lives: a local path or a URI."""
        record = self.get(id_or_prefix)
        try:
            artifact = record.artifact(role)
        except LookupError:
            roles = ", ".join(sorted({a.role for a in record.artifacts})) or "none"
            raise NotFoundError(
                f"record {record.id} has no {role!r} artifact (roles: {roles}); pass --role"
            ) from None
        return self.locate(artifact)

    def locate(self, artifact: Artifact) -> str:
        """The absolute path or URI of an artifact."""
        loc = artifact.locator
        if isinstance(loc, LocalPath):
            p = Path(loc.path)
            return str(p if p.is_absolute() else self.root / p)
        if isinstance(loc, ExternalUri):
            return loc.uri
        url = getattr(loc, "url", None) or getattr(loc, "path", None)
        if url:
            return str(url)
        raise NotFoundError(
            f"artifact {artifact.id} ({loc.type}) has no path; read it with the API"
        )

    def search(
        self,
        query: Query | str | Sequence[str] | None = None,
        *,
        text: str | None = None,
        bbox: str | Sequence[float] | None = None,
        time: str | None = None,
        kind: str | None = None,
        status: str | None = None,
        tags: Iterable[str] = (),
        sort: str | Sequence[str] | None = None,
        limit: int | None = 100,
        cursor: str | None = None,
        **metadata: Any,
    ) -> Page:
        """Find records. ``query`` is a Query or CLI terms (``"site=MHD year>=2020"``);
        keyword arguments add conditions (``site="MHD"``)."""
        q = self._query(
            query,
            text=text,
            bbox=bbox,
            time=time,
            kind=kind,
            status=status,
            tags=tags,
            sort=sort,
            limit=limit,
            cursor=cursor,
            metadata=metadata,
        )
        return self.backend.search(q)

    def count(self, query: Query | str | Sequence[str] | None = None, **kwargs: Any) -> int:
        """How many records match (same arguments as :meth:`search`)."""
        kwargs.setdefault("limit", None)
        q = self._query(
            query, **{k: kwargs.pop(k) for k in list(kwargs) if k in _QUERY_KW}, metadata=kwargs
        )
        return self.backend.count(q)

    def _query(
        self,
        query: Query | str | Sequence[str] | None,
        *,
        text: str | None = None,
        bbox: str | Sequence[float] | None = None,
        time: str | None = None,
        kind: str | None = None,
        status: str | None = None,
        tags: Iterable[str] = (),
        sort: str | Sequence[str] | None = None,
        limit: int | None = 100,
        cursor: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Query:
        if isinstance(query, Query):
            q = query
        else:
            q = Query.parse(
                query or (), text=text, bbox=bbox, time=time, sort=sort, limit=limit, cursor=cursor
            )
        extra: list[Condition] = []
        try:
            if kind:
                extra.append(Condition(field="kind", value=kind))
            if status:
                extra.append(Condition(field="status", value=status))
            extra.extend(Condition(field="tag", value=t) for t in tags)
            for key, value in (metadata or {}).items():
                op = "in" if isinstance(value, list) else "eq"
                extra.append(Condition(field=key, op=op, value=value))
        except ValueError as exc:
            from arcodex.errors import QueryError

            raise QueryError(f"bad search argument: {pydantic_message(exc)}") from None
        if extra:
            q = q.model_copy(update={"conditions": [*q.conditions, *extra]})
        return q

    def fields(self, prefix: str | None = None) -> list[FieldSummary]:
        """Every metadata path in use, with its types, record count and example values."""
        return self.backend.fields(prefix)

    def info(self) -> CatalogInfo:
        """A curated summary: where, what backend, how many of what, recent failures."""
        stats: BackendStats = self.backend.stats()
        failed = [
            {
                "id": op.id,
                "action": op.action,
                "user": op.user,
                "started_at": op.started_at.isoformat(),
                "error": op.error.model_dump() if op.error else None,
            }
            for op in self.backend.operations(status="failed", limit=5)
        ]
        return CatalogInfo(
            root=str(self.root),
            backend=self.backend.url,
            version=__version__,
            records=sum(stats.records_by_status.values()),
            records_by_kind=stats.records_by_kind,
            records_by_status=stats.records_by_status,
            artifacts_by_format=stats.artifacts_by_format,
            artifacts_by_status=stats.artifacts_by_status,
            profiles={name: p.model_dump() for name, p in self.config.profiles.items()},
            default_profile=self.config.default_profile,
            schema_policy=self.config.schema_policy,
            schemas=self.schemas.names(),
            recent_failed_operations=failed,
            state_dir=str(self.root / STATE_DIR),
            event_log=str(self.events.directory),
            plugins=[
                {"name": p.name, "version": p.version, "status": p.status}
                for p in plugin_registry().plugins()
            ],
        )

    def operations(self, status: str | None = None, limit: int = 20) -> list[Operation]:
        """Recent operations, newest first."""
        return self.backend.operations(status=status, limit=limit)

    # -- changing ----------------------------------------------------------------

    @_refusals_logged("update")
    def update(
        self,
        id_or_prefix: str,
        *,
        set: Mapping[str, Any] | None = None,
        unset: Iterable[str] = (),
        add_tags: Iterable[str] = (),
        remove_tags: Iterable[str] = (),
        title: str | None = None,
        description: str | None = None,
        kind: str | None = None,
        status: str | None = None,
        expected_version: int | None = None,
        schema: str | None = None,
        schema_policy: Policy | None = None,
        user: str | None = None,
    ) -> Record:
        """Change a record. ``set``/``unset`` take dotted metadata paths. With
        ``expected_version`` the update fails (ConflictError) if the record changed since."""
        user = user or current_user()
        current = self.get(id_or_prefix)
        if current.status == "deleted":
            raise ConflictError(
                f"record {current.id} is deleted; run `arcodex restore {current.id}` first"
            )
        if status == "deleted":
            raise ValidationError("use delete to remove a record, not update --status deleted")
        version = current.version if expected_version is None else expected_version
        if version != current.version:
            raise ConflictError(
                f"record {current.id} is at version {current.version}, not {expected_version}; "
                "reload it and apply the change again"
            )
        if not (set or unset or add_tags or remove_tags) and all(
            v is None for v in (title, description, kind, status, schema)
        ):
            raise ValidationError(
                f"nothing to change on {current.id}: give metadata to set or unset, tags, "
                "title, description, kind or status"
            )
        metadata = current.model_dump(mode="json")["metadata"]
        for path in unset:
            if not unset_path(metadata, path):
                raise NotFoundError(
                    f"record {current.id} has no metadata {path!r} to unset; see `arcodex show {current.id}`"
                )
        for path, value in (set or {}).items():
            set_path(metadata, path, value)
        dropped = frozenset(remove_tags)  # `set` is a parameter here
        tags = [t for t in current.tags if t not in dropped] + list(add_tags)
        changes: dict[str, Any] = {
            "metadata": metadata,
            "tags": tags,
            "version": current.version + 1,
            "updated_at": utcnow(),
            "updated_by": user,
        }
        for name, value in (
            ("title", title),
            ("description", description),
            ("kind", kind),
            ("status", status),
        ):
            if value is not None:
                changes[name] = value
        try:
            new = Record.model_validate({**current.model_dump(), **changes})
        except ValueError as exc:
            raise ValidationError(f"cannot update {current.id}: {pydantic_message(exc)}") from None
        new = self._with_schema(new, schema, schema_policy, user)
        self._hook("after_record_validate", record=new)
        with self.unit_of_work(
            "update",
            user=user,
            inputs=[current.id],
            parameters={"set": sorted((set or {}).keys()), "unset": list(unset)},
        ) as uow:
            uow.transition("planned", records=[current.id], version=version)
            new = self._replace_record(uow, current, new, version)
        return new

    def delete(self, id_or_prefix: str, *, purge: bool = False, user: str | None = None) -> Record:
        """Tombstone a record (restorable); with ``purge`` remove it and its managed files."""
        if purge:
            return self.purge(id_or_prefix, user=user)
        user = user or current_user()
        record = self.get(id_or_prefix)
        if record.status == "deleted":
            raise ConflictError(
                f"record {record.id} is already deleted; `arcodex purge {record.id}` removes it"
            )
        return self._run(
            "delete",
            record.id,
            user,
            lambda: self.backend.delete(record.id, user=user),
            undo=lambda: self.backend.restore(record.id, user=user),
        )

    def restore(self, id_or_prefix: str, *, user: str | None = None) -> Record:
        """Bring back a deleted record with the status it had."""
        user = user or current_user()
        record = self.get(id_or_prefix)
        if record.status != "deleted":
            raise ConflictError(
                f"record {record.id} is not deleted (status {record.status}); nothing to restore"
            )
        return self._run(
            "restore",
            record.id,
            user,
            lambda: self.backend.restore(record.id, user=user),
            undo=lambda: self.backend.delete(record.id, user=user),
        )

    def purge(self, id_or_prefix: str, *, user: str | None = None) -> Record:
        """Remove a record for good, and the files arcodex wrote for it (never others).

        The record goes in one transaction (undone by writing it back); its files go
        after it, journaled beforehand, so that a crash is rolled forward by `recover`
        and a file that cannot be removed stays listed (and fixable) by `doctor`.
        """
        user = user or current_user()
        record = self.get(id_or_prefix)
        remove = [self._journal_place(a) for a in record.artifacts if a.managed]
        with self.unit_of_work("purge", user=user, inputs=[record.id]) as uow:
            uow.transition("planned", records=[record.id], version=record.version, remove=remove)
            uow.transition("catalog_write_started")
            purged = self.backend.purge(record.id)
            uow.on_rollback(
                f"write {record.id} back", lambda: self._put_back(record), record_id=record.id
            )
            uow.transition("catalog_write_succeeded")
            uow.transition("artifact_delete_started")
            for artifact in purged.artifacts:
                try:
                    self._delete_managed(artifact)
                except (ArcodexError, OSError) as exc:
                    # The record is gone for good: the file stays an orphan the journal names.
                    uow.transition(
                        "artifact_delete_failed", location=self.locate(artifact), error=str(exc)
                    )
            uow.operation.outputs = [record.id]
        return purged

    def _journal_place(self, artifact: Artifact) -> dict[str, str]:
        """Where a managed artifact is, as a journal keeps it (profile and key, or a path)."""
        profile, key = _where(self, artifact.locator)
        if profile is not None and key is not None:
            return {"profile": profile, "key": key}
        return {"path": self.locate(artifact)}

    def _put_back(self, record: Record) -> None:
        if not exists(self.backend, record.id):
            self.backend.add([record])

    def _run(
        self,
        action: str,
        record_id: str,
        user: str,
        fn: Callable[[], Record],
        undo: Callable[[], Any] | None = None,
    ) -> Record:
        version = self.backend.get(record_id).version
        with self.unit_of_work(action, user=user, inputs=[record_id]) as uow:
            uow.transition("planned", records=[record_id], version=version)
            uow.transition("catalog_write_started")
            result = fn()
            if undo is not None:
                uow.on_rollback(f"undo {action} of {record_id}", undo, record_id=record_id)
            uow.transition("catalog_write_succeeded")
            uow.operation.outputs = [record_id]
        return result

    def _write_records(self, uow: UnitOfWork, records: Sequence[Record]) -> None:
        """Insert records in one transaction, undoable by purging them again."""
        if self.hooks.names("before_record_commit"):
            records = [self._before_commit(uow, r) for r in records]
        uow.transition("catalog_write_started")
        self.backend.add(records)
        ids = [r.id for r in records]
        uow.on_rollback(
            "remove the records added",
            lambda: [self.backend.purge(i) for i in ids if exists(self.backend, i)],
            records=ids[:1000],
        )
        uow.transition("catalog_write_succeeded")
        uow.transition("hooks_started")
        if self.hooks.names("after_record_commit"):
            for record in records:
                self._hook("after_record_commit", uow=uow, record=record)
        uow.operation.outputs = ids[:1000]

    def _replace_record(
        self, uow: UnitOfWork, current: Record, new: Record, expected_version: int | None = None
    ) -> Record:
        """Write ``new`` over ``current`` in this unit, undoable by writing ``current`` back."""
        version = current.version if expected_version is None else expected_version
        if self.hooks.names("before_record_commit"):
            new = self._before_commit(uow, new)
        uow.transition("catalog_write_started")
        self.backend.update(new, expected_version=version)
        uow.on_rollback(
            f"restore {current.id} as it was",
            lambda: self.backend.update(
                current.model_copy(update={"version": new.version + 1}),
                expected_version=new.version,
            ),
            record_id=current.id,
        )
        uow.transition("catalog_write_succeeded")
        uow.transition("hooks_started")
        self._hook("after_record_commit", uow=uow, record=new)
        uow.operation.outputs = [new.id]
        return new

    def _before_commit(self, uow: UnitOfWork, record: Record) -> Record:
        updates = self._hook("before_record_commit", uow=uow, record=record).metadata
        if not updates:
            return record
        try:
            return Record.model_validate(
                {**record.model_dump(), "metadata": merge(record.metadata, updates)}
            )
        except ValueError as exc:
            raise ValidationError(
                f"a before_record_commit hook gave {record.id} bad metadata: {pydantic_message(exc)}"
            ) from None

    def _hook(
        self,
        point: str,
        *,
        uow: UnitOfWork | None = None,
        record: Record | None = None,
        path: Path | None = None,
        key: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> HookResult:
        """Run the hooks at ``point`` (nothing to do when none is registered)."""
        if not self.hooks.names(point):
            return HookResult()
        context = HookContext(
            point,
            operation=uow.operation if uow else None,
            record=record,
            path=path,
            key=key,
            metadata=dict(metadata or {}),
        )
        return self.hooks.run(context)

    @contextmanager
    def unit_of_work(
        self,
        action: str,
        *,
        user: str | None = None,
        inputs: Sequence[str] = (),
        parameters: Mapping[str, Any] | None = None,
    ) -> Iterator[UnitOfWork]:
        """Run one operation: journaled, logged, recorded, and rolled back on failure.

        ``uow.transition(state)`` journals progress durably;
        ``uow.on_rollback(description, fn)`` registers what undoes the work done so far.
        """
        operation = Operation(
            action=action,
            user=user or current_user(),
            inputs=list(inputs),
            parameters=dict(parameters or {}),
        )
        self.events.emit(
            "operation.started",
            f"{action} started",
            operation_id=operation.id,
            user=operation.user,
            action=action,
        )
        uow = UnitOfWork(operation, self.journal, self.events)
        try:
            uow.transition("started")
            yield uow
            uow.transition("committed")
        except BaseException as exc:
            if uow.state == "committed":
                # Only the failure injection after the commit lands here: the work is done.
                self._finish(operation)
                self._close_journal(operation.id)
                self._after_commit(uow)
                raise
            try:
                self.hooks.run(
                    HookContext("on_operation_error", operation=operation, error=exc),
                    raise_required=False,
                )
                uow.rollback(exc)
                self._close_journal(operation.id)
                self.hooks.run(
                    HookContext("on_operation_rollback", operation=operation, error=exc),
                    raise_required=False,
                )
            finally:
                self._finish(operation, error=exc)
            raise
        self._finish(operation)
        self._close_journal(operation.id)
        self._after_commit(uow)

    @staticmethod
    def _after_commit(uow: UnitOfWork) -> None:
        for after in uow.after:
            with suppress(Exception):
                after()

    def _close_journal(self, operation_id: str) -> None:
        with suppress(OSError):
            self.journal.close(operation_id)

    @contextmanager
    def _checking(self, action: str, user: str) -> Iterator[None]:
        """Log input that is refused before an operation starts."""
        try:
            yield
        except ValidationError as exc:
            with suppress(ArcodexError):
                self.events.emit(
                    "validation.failed",
                    f"{action} refused: {exc}",
                    level="warning",
                    user=user,
                    error=exc,
                    action=action,
                )
            raise

    # -- extraction ------------------------------------------------------------------

    @staticmethod
    def extract(path: str | os.PathLike[str], *, require_metadata: bool = False) -> dict[str, Any]:
        """What ``add`` would read from a file or store, without a catalog or any write."""
        target = Path(path).expanduser()
        if not target.exists():
            raise NotFoundError(f"{target} does not exist; check the path")
        found = extract_file(target, require=require_metadata)
        return {
            "path": str(target.resolve()),
            "kind": found.kind,
            "format": found.format,
            "media_type": found.media_type,
            "extractors": found.extractors,
            "errors": found.errors,
            "metadata": check_metadata(found.metadata),
        }

    # -- health ----------------------------------------------------------------------

    def doctor(
        self, *, verify_hashes: bool = False, fix: bool = False, dry_run: bool = False
    ) -> DoctorReport:
        """Interrupted operations, orphans, missing or changed artifacts. With ``fix``,
        remove the orphans a journal or a provenance marker proves arcodex wrote
        (``dry_run``: only say which)."""
        if fix:
            return doctor_fix(self, verify_hashes=verify_hashes, dry_run=dry_run)
        return diagnose(self, verify_hashes=verify_hashes)

    def recover(self, *, dry_run: bool = False) -> list[Recovery]:
        """Roll interrupted operations forward (data complete) or back; ``dry_run`` only says."""
        return recover_operations(self, dry_run=dry_run)

    # -- schemas -------------------------------------------------------------------

    def register_schema(
        self, ref: str, schema: type[BaseModel] | dict[str, Any] | str | os.PathLike[str]
    ) -> str:
        """Register a JSON Schema (dict or file, kept with the catalog) or a Pydantic model
        (this process only) under ``name@version``; returns the reference."""
        return self.schemas.register(
            ref, schema if not isinstance(schema, os.PathLike) else str(schema)
        )

    def list_schemas(self) -> list[str]:
        """Every registered ``name@version``."""
        return self.schemas.names()

    def validate(
        self,
        id_or_prefix: str | None = None,
        *,
        all: bool = False,
        document: Mapping[str, Any] | None = None,
        schema: str | None = None,
    ) -> list[SchemaResult]:
        """Check records against their schemas: one record, every record (``all``), or a
        record document that is not in the catalog. Nothing is changed."""
        if document is not None:
            try:
                record = Record.model_validate(dict(document))
            except ValueError as exc:
                return [SchemaResult(False, schema, [pydantic_message(exc)])]
            targets = [record]
        elif all:
            targets = self.backend.search(Query(limit=None)).records
        elif id_or_prefix:
            targets = [self.get(id_or_prefix)]
        else:
            raise ValidationError("say what to validate: a record id, all=True, or a document")
        return [self._check_schema(r, schema) for r in targets]

    def _check_schema(self, record: Record, schema: str | None = None) -> SchemaResult:
        name, version = record.schema_name, record.schema_version
        if schema:
            name, version = schema_parts(schema)
        if not name:
            return SchemaResult(
                True, None, warnings=["the record names no schema"], record_id=record.id
            )
        result = self.schemas.validate(record.metadata, name, version)
        result.record_id = record.id
        return result

    def _with_schema(
        self, record: Record, schema: str | None, policy: Policy | None, user: str
    ) -> Record:
        """Attach ``schema`` to a record about to be written and apply the policy to it."""
        policy = policy or self.config.schema_policy
        if schema:
            name, version = schema_parts(schema)
            name, version = self.schemas.resolve(name, version).split("@", 1)
            record = record.model_copy(update={"schema_name": name, "schema_version": version})
        if policy == "off" or not record.schema_name:
            return record
        result = self._check_schema(record)
        if result.valid:
            return record
        summary = result.errors[0] + (
            f" (and {len(result.errors) - 1} more)" if len(result.errors) > 1 else ""
        )
        if policy == "strict":
            raise ValidationError(
                f"record {record.id} does not match schema {result.schema}: {summary}; "
                "fix the metadata, or use schema policy warn"
            )
        self.events.emit(
            "validation.warning",
            f"record {record.id} does not match schema {result.schema}: {summary}",
            level="warning",
            record_id=record.id,
            user=user,
            schema=result.schema,
            errors=result.errors[:50],
        )
        return record

    def logs(
        self,
        *,
        user: str | None = None,
        record: str | None = None,
        operation: str | None = None,
        level: str | None = None,
        event: str | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Events of this catalog, oldest first (``level`` is a minimum; ``event`` may end in ``*``)."""
        return self.events.query(
            user=user,
            record=record,
            operation=operation,
            level=level,
            event=event,
            since=since,
            until=until,
            limit=limit,
        )

    def _finish(self, operation: Operation, error: BaseException | None = None) -> None:
        operation.finished_at = utcnow()
        if error is None:
            operation.status = "succeeded"
        else:
            operation.status = "failed"
            operation.error = OperationError(type=type(error).__name__, message=str(error)[:2000])
        # The operation has happened (or failed) already: a log that cannot be
        # written must not turn that into a different error.
        with suppress(ArcodexError):
            self.events.emit(
                f"operation.{operation.status}",
                f"{operation.action} {operation.status}"
                + (f": {operation.error.message}" if operation.error else ""),
                level="error" if error is not None else "info",
                operation_id=operation.id,
                record_id=operation.outputs[0] if len(operation.outputs) == 1 else None,
                user=operation.user,
                error=error,
                action=operation.action,
                outputs=operation.outputs[:100],
            )
        try:
            self.backend.save_operation(operation)
        except ArcodexError:
            if error is None:
                raise
            # The original failure matters more than the failure to log it.


def _addition(root: Path, file: Path, record: Record) -> Addition:
    """What the duplicate check knows of an added file: its content, and its path when it
    stays where it is (a managed copy's own path is arcodex's, not the user's); a path in
    the catalog is also known relative to its root, as arcodex records its own products."""
    artifact = record.artifacts[0]
    places: tuple[str, ...] = ()
    if not artifact.managed and isinstance(artifact.locator, LocalPath):
        path = Path(artifact.locator.path)
        inside = path.is_relative_to(root.resolve())
        places = (str(path), str(path.relative_to(root.resolve()))) if inside else (str(path),)
    return Addition(str(file), sha256=artifact.hashes.get("sha256"), locations=places)


_QUERY_KW = {"text", "bbox", "time", "kind", "status", "tags", "sort", "limit", "cursor"}
