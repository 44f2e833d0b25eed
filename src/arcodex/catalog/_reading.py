"""The catalog's parts, and everything that reads them: records, artifacts' places,
searches, fields, a summary, the operation and event logs.

:class:`CatalogReader` is the base of :class:`~arcodex.catalog.Catalog`: the
writing, adding, changing, health and schema parts build on it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from arcodex import __version__
from arcodex.backends import BackendStats, CatalogBackend, Page
from arcodex.catalog._config import CONFIG_FILE, CatalogConfig, profile_secrets
from arcodex.catalog._events import EventLog
from arcodex.catalog._hooks import HookRegistry
from arcodex.catalog._journal import operation_state
from arcodex.catalog._metadata import pydantic_message
from arcodex.catalog._opstate import JournalStore, Leases
from arcodex.catalog._schemas import SchemaRegistry
from arcodex.errors import ConflictError, NotFoundError
from arcodex.model import (
    Artifact,
    Condition,
    ExternalUri,
    FieldSummary,
    FsspecUrl,
    LocalPath,
    Operation,
    Query,
    Record,
)
from arcodex.plugins import registry as plugin_registry
from arcodex.storage import FsspecStore, LocalStore, open_storage

__all__ = ["JOURNAL_DIR", "LOG_DIR", "SCHEMA_DIR", "STATE_DIR", "CatalogInfo", "CatalogReader"]

STATE_DIR = "state"
LOG_DIR = "logs"
JOURNAL_DIR = "journal"
SCHEMA_DIR = "schemas"
_QUERY_KW = {"text", "bbox", "time", "kind", "status", "tags", "sort", "limit", "cursor"}


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


class CatalogReader:
    """A catalog's parts (config, backend, event log, schemas, journal, hooks) and reads."""

    def __init__(self, root: Path, config: CatalogConfig, backend: CatalogBackend) -> None:
        self.root = root
        self.config = config
        self.backend = backend
        state = operation_state(backend, root / STATE_DIR / JOURNAL_DIR, root / STATE_DIR / LOG_DIR)
        self.events = EventLog(
            root / STATE_DIR / LOG_DIR, secrets=profile_secrets(config), store=state.events
        )
        self.schemas = SchemaRegistry(root / SCHEMA_DIR, backend=backend)
        #: The unit-of-work journal: files under the root, or the backend's (PostgreSQL).
        self.journal: JournalStore = state.journal
        #: How a running operation is told from a dead one, here and on other hosts.
        self.leases: Leases = state.leases
        self._operation_state = state
        self.hooks = HookRegistry(self.events)
        plugin_registry().configure(config.plugins.enabled, config.plugins.allow)

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

    def _where(self, locator: Any) -> tuple[str | None, str | None]:
        """The profile and key a managed locator points at."""
        for name in self.config.profiles:
            store, _ = self._store(name)
            if isinstance(locator, LocalPath) and isinstance(store, LocalStore):
                path = Path(locator.path)
                full = path if path.is_absolute() else self.root / path
                try:
                    return name, full.resolve().relative_to(store.root.resolve()).as_posix()
                except ValueError:
                    continue
            if (
                isinstance(locator, FsspecUrl)
                and isinstance(store, FsspecStore)
                and locator.profile == name
            ):
                return name, store.key_of(locator.url)
        return None, None

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

    def ids(self, query: Query | str | Sequence[str] | None = None, **kwargs: Any) -> list[str]:
        """The ids of the records that match, in search order (same arguments as
        :meth:`search`; no limit unless given): no record is read, so it is the fast
        way to list many."""
        kwargs.setdefault("limit", None)
        q = self._query(
            query, **{k: kwargs.pop(k) for k in list(kwargs) if k in _QUERY_KW}, metadata=kwargs
        )
        return self.backend.ids(q)

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
            event_log=self.events.store.where,
            plugins=[
                {"name": p.name, "version": p.version, "status": p.status}
                for p in plugin_registry().plugins()
            ],
        )

    def operations(self, status: str | None = None, limit: int = 20) -> list[Operation]:
        """Recent operations, newest first."""
        return self.backend.operations(status=status, limit=limit)

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
