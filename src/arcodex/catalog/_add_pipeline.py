"""The add operation as a pipeline: extract-metadata → validate-record → plan-path →
write-artifact → commit-record (files), and validate-uri → commit-record (URIs).

Each step works on every file of the operation at once, so that a bulk add of
many files pays the steps' own cost (journal marks, events, hooks) once, not once
per file. The steps that change nothing run under ``--dry-run``; then they also
collect each file's refusals (a bad record, a schema it fails, a duplicate) instead
of stopping at the first, and ``ctx.state["plan"]`` says what would be added where.

A pipeline declared in ``arcodex.yaml`` may leave steps out: without
extract-metadata the files are read as with ``--no-extract``; write-artifact plans
the paths itself when plan-path did not run.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from arcodex.catalog._duplicates import Addition, clashes, guard_keys, refuse_duplicates
from arcodex.catalog._events import current_user
from arcodex.catalog._journal import UnitOfWork
from arcodex.catalog._metadata import merge, metadata_of, pydantic_message
from arcodex.catalog._pipeline import Pipeline, PipelineContext, Step, open_unit, register_pipeline
from arcodex.catalog._pipeline import register_step as _register
from arcodex.catalog._staging import StagedCopies
from arcodex.catalog._writing import exists
from arcodex.errors import ArcodexError, NotFoundError, StorageError, ValidationError
from arcodex.extract import Extracted, extract_file
from arcodex.model import Artifact, ExternalUri, FsspecUrl, LocalPath, Record
from arcodex.storage import FsspecStore, LocalStore, hash_file, render_path

__all__ = [
    "ADD",
    "ADD_EXTERNAL",
    "AddOptions",
    "FileOptions",
    "PlannedAdd",
    "bare",
    "check_readable",
    "check_uri",
]


class FileRecordOptions(BaseModel):
    """How a file becomes a record: what ``add`` and ``ingest-files`` both take."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    kind: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    in_place: bool = False
    extract: bool = True
    profile: str | None = None
    schema_ref: str | None = Field(default=None, alias="schema")
    schema_policy: Literal["off", "warn", "strict"] | None = None
    require_metadata: bool = False

    def record_params(self) -> dict[str, Any]:
        """These options as pipeline params (``schema`` by its alias)."""
        fields = set(FileRecordOptions.model_fields)
        return self.model_dump(include=fields, by_alias=True)


class AddOptions(FileRecordOptions):
    """What an add is asked to do (the parameters of the ``add`` pipelines)."""

    paths: list[str] = Field(default_factory=list, description="files to add")
    uris: list[str] = Field(default_factory=list, description="URIs to register")
    title: str | None = None
    description: str | None = None
    record_ids: list[str] | None = None
    allow_duplicate: bool = False
    media_type: str | None = None
    format: str | None = None

    @classmethod
    def of(cls, params: dict[str, Any]) -> AddOptions:
        """The options in a pipeline's params; a bad one is refused, named."""
        try:
            return cls.model_validate(params)
        except ValueError as exc:
            raise ValidationError(f"bad add parameter {pydantic_message(exc)}") from None


#: The parameters the add steps read (``arcodex run … --param KEY=VALUE``).
ADD_PARAMS = tuple(sorted(f.alias or name for name, f in AddOptions.model_fields.items()))


@dataclass
class PlannedAdd:
    """One file (or URI) of an add: its record as it would be written, where its
    artifact would go, and why it would be refused."""

    source: str
    record: Record | None = None
    found: Extracted | None = None
    profile: str | None = None
    key: str | None = None
    location: str | None = None
    size_bytes: int | None = None
    sha256: str | None = None
    refusals: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """What a dry run reports of this file (JSON-ready)."""
        rec, meta = self.record, (self.record.metadata if self.record else {})
        return {
            "source": self.source,
            "record_id": rec.id if rec else None,
            "kind": rec.kind if rec else None,
            "title": rec.title if rec else None,
            "format": self.found.format if self.found else None,
            "media_type": self.found.media_type if self.found else None,
            "schema": f"{rec.schema_name}@{rec.schema_version}"
            if rec and rec.schema_name
            else None,
            "profile": self.profile,
            "key": self.key,
            "location": self.location,
            "size_bytes": self.size_bytes,
            "fields": {k: meta[k] for k in _KEY_FIELDS if k in meta},
            "metadata_keys": sorted(meta),
            "refusals": self.refusals,
            "warnings": self.warnings,
        }


@dataclass(frozen=True)
class FileOptions:
    """What one file of a batch says of itself (a manifest row): metadata over the add's,
    a title and kind instead of the add's, tags besides the add's."""

    metadata: dict[str, Any] = field(default_factory=dict)
    title: str | None = None
    kind: str | None = None
    tags: tuple[str, ...] = ()


_NO_OPTIONS = FileOptions()

#: Metadata a dry run shows of each file (the rest is counted by its top-level keys).
_KEY_FIELDS = ("start_datetime", "end_datetime", "bbox", "site", "variables")


def _options(ctx: PipelineContext) -> AddOptions:
    opts = ctx.state.get("options")
    if not isinstance(opts, AddOptions):
        opts = AddOptions.of(ctx.params)
        ctx.state["options"] = opts
    return opts


def _plan(ctx: PipelineContext) -> list[PlannedAdd]:
    """The files of this add, one PlannedAdd each (made by the first step that needs them)."""
    plan = ctx.state.get("plan")
    if plan is None:
        opts = _options(ctx)
        if not opts.paths:
            raise ValidationError("nothing to add: give one or more files")
        files = [Path(p).expanduser() for p in opts.paths]
        if opts.record_ids is not None and len(opts.record_ids) != len(files):
            raise ValidationError(
                f"{len(opts.record_ids)} ids given for {len(files)} files; give one id per file"
            )
        for file in files:
            check_readable(file, in_place=opts.in_place)
        plan = [PlannedAdd(str(file)) for file in files]
        ctx.state["files"] = files
        ctx.state["plan"] = plan
    return list(plan)


def _refuse(ctx: PipelineContext, item: PlannedAdd, exc: ArcodexError) -> None:
    """A dry run notes a refusal and goes on; a real run stops at it, unless it keeps going
    (``ctx.state["keep_going"]``: a batch of an ingest, which sets refused files aside)."""
    if not ctx.dry_run and not ctx.state.get("keep_going"):
        raise exc
    item.refusals.append(str(exc))


# -- the steps ------------------------------------------------------------------------


def extract_metadata(ctx: PipelineContext) -> None:
    """Read each file's metadata (format, kind, extents), with the extract hooks."""
    catalog = ctx.need_catalog()
    opts = _options(ctx)
    plan = _plan(ctx)
    files: list[Path] = ctx.state["files"]
    for file, item in zip(files, plan, strict=True):
        before = catalog._hook("before_metadata_extract", path=file).metadata
        try:
            found = (
                extract_file(file, require=opts.require_metadata) if opts.extract else bare(file)
            )
        except ArcodexError as exc:
            _refuse(ctx, item, exc)
            continue
        for problem in found.errors:
            item.warnings.append(f"metadata only partly read: {problem}")
            if ctx.dry_run:
                continue
            with suppress(ArcodexError):
                catalog.events.emit(
                    "extract.failed",
                    f"metadata of {file} only partly read: {problem}",
                    level="warning",
                    user=ctx.user,
                    path=str(file),
                )
        after = catalog._hook("after_metadata_extract", path=file, metadata=found.metadata)
        found.metadata = merge(merge(before, found.metadata), after.metadata)
        item.found = found


def validate_record(ctx: PipelineContext) -> None:
    """Make each file's record (its metadata with the user's) and check it against its
    schema under the policy.

    A batch of an ingest may give files their own options (``ctx.state["file_options"]``,
    one :class:`FileOptions` per file, from a manifest's columns): its metadata goes over
    the add's, its title and kind replace them, its tags join them.
    """
    catalog = ctx.need_catalog()
    opts = _options(ctx)
    plan = _plan(ctx)
    user = ctx.user or current_user()
    user_meta = metadata_of(opts.metadata)
    files: list[Path] = ctx.state["files"]
    taken = _taken_ids(catalog.backend, opts.record_ids) if ctx.dry_run else set()
    per_file: list[FileOptions] | None = ctx.state.get("file_options")
    for i, (file, item) in enumerate(zip(files, plan, strict=True)):
        if item.refusals:  # its metadata could not be read (a batch that keeps going)
            continue
        if item.found is None:
            # No extract-metadata step: the file is read as with --no-extract.
            item.found = bare(file)
        found = item.found
        own = per_file[i] if per_file is not None else _NO_OPTIONS
        merged = merge(
            found.metadata, merge(user_meta, own.metadata) if own.metadata else user_meta
        )
        merged = merge(
            merged, catalog._hook("before_record_validate", path=file, metadata=merged).metadata
        )
        rec_kwargs: dict[str, Any] = {}
        if opts.record_ids is not None:
            rec_kwargs["id"] = opts.record_ids[i]
            if opts.record_ids[i] in taken:
                item.refusals.append(f"record {opts.record_ids[i]} exists already; give another id")
        try:
            record = Record(
                kind=own.kind or opts.kind or found.kind or "document",
                title=own.title or opts.title or found.metadata.get("title") or file.name,
                description=opts.description,
                metadata=merged,
                tags=[*opts.tags, *(t for t in own.tags if t not in opts.tags)],
                created_by=user,
                updated_by=user,
                **rec_kwargs,
            )
        except ValueError as exc:
            _refuse(ctx, item, ValidationError(f"cannot add {file}: {pydantic_message(exc)}"))
            continue
        try:
            record = catalog._with_schema(record, opts.schema_ref, opts.schema_policy, user)
        except ArcodexError as exc:
            item.record = record
            _refuse(ctx, item, exc)
            continue
        catalog._hook("after_record_validate", record=record, path=file)
        item.record = record
    ctx.state["validated"] = True


def plan_path(ctx: PipelineContext) -> None:
    """Say where each file's artifact goes: a key in the storage profile (rendered from
    its path template), or the file itself when it is registered in place. A dry run
    also reads each file's hash, to name the duplicates a real add would refuse."""
    catalog = ctx.need_catalog()
    opts = _options(ctx)
    plan = _plan(ctx)
    if not ctx.dry_run:
        _begin(ctx)
    files: list[Path] = ctx.state["files"]
    store, template = (None, "") if opts.in_place else catalog._store(opts.profile)
    for file, item in zip(files, plan, strict=True):
        record = item.record
        if record is None:
            continue
        if store is None:
            item.location = str(file.resolve())
        else:
            catalog._hook("before_path_plan", uow=ctx.uow, record=record, path=file)
            item.profile = opts.profile or catalog.config.default_profile
            item.key = _key(template, record, file)
            catalog._hook("after_path_plan", uow=ctx.uow, record=record, path=file, key=item.key)
            item.location = _location(store, item.key)
        if ctx.dry_run:
            item.size_bytes, item.sha256 = dir_size(file) if file.is_dir() else file_hash(file)
    ctx.state["planned_paths"] = True
    if ctx.dry_run and not opts.allow_duplicate:
        candidates = [i for i in plan if i.record is not None]
        for index, why in clashes(
            catalog.backend, [_addition_of(catalog.root, i) for i in candidates]
        ):
            candidates[index].refusals.append(why)


def write_artifact(ctx: PipelineContext) -> None:
    """Copy each file into managed storage (or hash it in place), journaled and undoable;
    then refuse duplicates (the copy hashed the file: one read of it).

    A batch that keeps going (``ctx.state["keep_going"]``) notes a file it cannot copy, or
    a duplicate, as that file's refusal (removing its copy) and adds the others.
    """
    catalog = ctx.need_catalog()
    opts = _options(ctx)
    plan = _plan(ctx)
    ctx.need("validated", "validate-record")
    if "planned_paths" not in ctx.state:
        plan_path(ctx)
    uow = _begin(ctx)
    uow.transition("artifact_write_started")
    files: list[Path] = ctx.state["files"]
    keep_going = bool(ctx.state.get("keep_going"))
    written: list[tuple[Path, PlannedAdd, Record]] = []
    store = None if opts.in_place else catalog._store(opts.profile)[0]
    profile = opts.profile or catalog.config.default_profile
    todo = [
        (file, item)
        for file, item in zip(files, plan, strict=True)
        if item.record is not None and item.found is not None and not item.refusals
    ]
    with StagedCopies(catalog, store, todo) as staged:
        for file, item in todo:
            record, found = item.record, item.found
            assert record is not None and found is not None
            locator: LocalPath | FsspecUrl
            try:
                mtime_ns = os.stat(file).st_mtime_ns
                if store is None:
                    size, sha = dir_size(file) if file.is_dir() else file_hash(file)
                    locator = LocalPath(path=str(file.resolve()))
                    managed = False
                else:
                    key = str(item.key)
                    catalog._hook(
                        "before_artifact_write", uow=uow, record=record, path=file, key=key
                    )
                    key, size, sha = staged.write(item, file, key)
                    undo_write(uow, store, key, profile)
                    item.key = key
                    catalog._hook(
                        "after_artifact_write", uow=uow, record=record, path=file, key=key
                    )
                    locator = store.locator(key)
                    managed = True
            except (ArcodexError, OSError) as exc:
                if not keep_going:
                    raise
                item.refusals.append(_why(file, exc))
                continue
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
                    "source_mtime_ns": mtime_ns,
                    "extractors": found.extractors,
                    **({"extract_errors": found.errors} if found.errors else {}),
                },
            )
            written.append((file, item, record.model_copy(update={"artifacts": [artifact]})))
    if not opts.allow_duplicate:
        additions = [_addition(catalog.root, f, r) for f, _, r in written]
        if uow.lease is not None:
            # Held until the unit ends, its commit included: an add of the same file on
            # another host waits here, then finds this one's record.
            uow.lease.guard(guard_keys(additions))
        if keep_going:
            refused = dict(clashes(catalog.backend, additions))
            for index in sorted(refused):
                _, item, _ = written[index]
                item.refusals.append(refused[index])
                if store is not None and item.key is not None:
                    store.delete(item.key)  # the undo registered for it stays harmless
            written = [w for i, w in enumerate(written) if i not in refused]
        else:
            # A refusal here rolls back the copies.
            refuse_duplicates(catalog.backend, additions)
    uow.transition("artifact_write_succeeded")
    ctx.state["records"] = [r for _, _, r in written]


def _why(file: Path, exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return f"cannot read {file}: {exc.strerror or exc}"
    return str(exc)


def validate_uri(ctx: PipelineContext) -> None:
    """Check each URI and make its record (an external artifact; nothing is fetched)."""
    catalog = ctx.need_catalog()
    opts = _options(ctx)
    user = ctx.user or current_user()
    if not opts.uris:
        raise ValidationError("nothing to add: give one or more URIs")
    if opts.record_ids is not None and len(opts.record_ids) != len(opts.uris):
        raise ValidationError(
            f"{len(opts.record_ids)} ids given for {len(opts.uris)} URIs; give one id per URI"
        )
    meta = metadata_of(opts.metadata)
    plan = [PlannedAdd(uri, location=uri) for uri in opts.uris]
    ctx.state["plan"] = plan
    taken = _taken_ids(catalog.backend, opts.record_ids) if ctx.dry_run else set()
    for i, (uri, item) in enumerate(zip(opts.uris, plan, strict=True)):
        try:
            check_uri(uri)
            if opts.record_ids is not None and opts.record_ids[i] in taken:
                raise ValidationError(
                    f"record {opts.record_ids[i]} exists already; give another id"
                )
            record = Record(
                kind=opts.kind or "external",
                title=opts.title or uri,
                description=opts.description,
                metadata=meta,
                tags=opts.tags,
                created_by=user,
                updated_by=user,
                artifacts=[
                    Artifact(
                        locator=ExternalUri(uri=uri),
                        media_type=opts.media_type,
                        format=opts.format,
                        status="external",
                    )
                ],
                **({"id": opts.record_ids[i]} if opts.record_ids is not None else {}),
            )
        except ValidationError as exc:
            _refuse(ctx, item, exc)
            continue
        except ValueError as exc:
            _refuse(ctx, item, ValidationError(f"cannot add {uri}: {pydantic_message(exc)}"))
            continue
        try:
            item.record = catalog._with_schema(record, opts.schema_ref, opts.schema_policy, user)
        except ArcodexError as exc:
            item.record = record
            _refuse(ctx, item, exc)
    for item in plan:
        if item.record is not None:
            catalog._hook("after_record_validate", record=item.record)
    if not opts.allow_duplicate:
        additions = [Addition(u, locations=(u,)) for u in opts.uris]
        if not ctx.dry_run and ctx._stack is not None:
            # Until the pipeline ends, its commit included (see write_artifact).
            ctx._stack.enter_context(catalog.leases.guard(guard_keys(additions)))
        if ctx.dry_run:
            for index, why in clashes(catalog.backend, additions):
                plan[index].refusals.append(why)
        else:
            refuse_duplicates(catalog.backend, additions)
    ctx.state["records"] = [item.record for item in plan if item.record is not None]


def commit_record(ctx: PipelineContext) -> None:
    """Write the records in one transaction (with the commit hooks); undoable."""
    catalog = ctx.need_catalog()
    records: list[Record] = ctx.need("records", "write-artifact or validate-uri")
    uow = ctx.uow
    if uow is None:
        opts = _options(ctx)
        uow = open_unit(ctx, "add", inputs=list(opts.uris or opts.paths))
        uow.transition("planned", records=[r.id for r in records])
    ctx.state["records"] = catalog._write_records(uow, records)


def _begin(ctx: PipelineContext) -> UnitOfWork:
    """Open the add's unit of work (once) and journal what it plans to add."""
    if ctx.uow is not None:
        return ctx.uow
    opts = _options(ctx)
    files: list[Path] = ctx.state["files"]
    uow = open_unit(
        ctx,
        "add",
        inputs=[str(f.resolve()) for f in files],
        parameters={
            "in_place": opts.in_place,
            "extract": opts.extract,
            "profile": opts.profile,
            "kind": opts.kind,
        },
    )
    ids = [item.record.id for item in _plan(ctx) if item.record is not None]
    uow.transition("planned", records=ids, profile=opts.profile)
    return uow


# -- helpers --------------------------------------------------------------------------


def _key(template: str, record: Record, file: Path) -> str:
    return render_path(
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


def _location(store: LocalStore | FsspecStore, key: str) -> str:
    if isinstance(store, LocalStore):
        return str(store.root / key)
    return store.url(key)


def _taken_ids(backend: Any, ids: Sequence[str] | None) -> set[str]:
    return {i for i in ids or () if exists(backend, i)}


def _addition_of(root: Path, item: PlannedAdd) -> Addition:
    """The duplicate check's view of a planned file (before anything is copied)."""
    in_place = item.key is None
    places: tuple[str, ...] = ()
    if in_place and item.location:
        path = Path(item.location)
        inside = path.is_relative_to(root.resolve())
        places = (str(path), str(path.relative_to(root.resolve()))) if inside else (str(path),)
    return Addition(item.source, sha256=item.sha256 or None, locations=places)


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


def check_uri(uri: str) -> None:
    """A URI to register: a scheme and a place, no spaces, no password."""
    parts = urlsplit(uri)
    if not parts.scheme or not (parts.netloc or parts.path) or any(c.isspace() for c in uri):
        raise ValidationError(
            f"{uri!r} is not a URI; give one like https://host/path or doi:10.1000/x"
        )
    if parts.password:
        raise ValidationError(
            "the URI carries a password; put credentials in a storage profile, not the URI"
        )


def check_readable(path: Path, *, in_place: bool = False) -> None:
    """A file to add exists and is readable (a directory only in place)."""
    if not path.exists():
        raise NotFoundError(f"{path} does not exist; check the path")
    if path.is_dir():
        if in_place:
            return
        raise ValidationError(
            f"{path} is a directory; add the files in it (e.g. {path}/*.nc), or register "
            "the whole directory (a Zarr store, say) where it is with --in-place"
        )
    try:
        with open(path, "rb") as fh:
            fh.read(1)
    except OSError as exc:
        raise StorageError(
            f"cannot read {path}: {exc.strerror or exc}; check its permissions"
        ) from exc


def dir_size(path: Path) -> tuple[int, str]:
    """Total size of a directory tree; directories carry no single hash."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()), ""


def file_hash(path: Path) -> tuple[int, str]:
    """Size and sha256 of a file."""
    try:
        return hash_file(path)
    except OSError as exc:
        raise StorageError(f"cannot read {path}: {exc.strerror or exc}") from exc


def bare(path: Path) -> Extracted:
    """What is known of a file without reading it: its name, size and type."""
    from arcodex.extract import FileExtractor

    found = Extracted()
    FileExtractor().extract(path, found)
    return found


def undo_write(uow: UnitOfWork, store: LocalStore | FsspecStore, key: str, profile: str) -> None:
    """Journal an object this unit created and register its removal."""
    uow.on_rollback(f"delete {key} from profile {profile}", lambda: store.delete(key), key=key)
    uow.transition("artifact_written", profile=profile, key=key)


def _step(name: str, fn: Any, *, changes: bool, inputs: str | None = "paths") -> Step:
    doc = " ".join((fn.__doc__ or "").split("\n\n")[0].split())
    return _register(Step(name, fn, changes=changes, doc=doc, params=ADD_PARAMS, inputs=inputs))


EXTRACT_METADATA = _step("extract-metadata", extract_metadata, changes=False)
VALIDATE_RECORD = _step("validate-record", validate_record, changes=False)
PLAN_PATH = _step("plan-path", plan_path, changes=False)
WRITE_ARTIFACT = _step("write-artifact", write_artifact, changes=True)
VALIDATE_URI = _step("validate-uri", validate_uri, changes=False, inputs="uris")
COMMIT_RECORD = _step("commit-record", commit_record, changes=True, inputs=None)

#: Adding files: copied into managed storage, or registered in place.
ADD = register_pipeline(
    Pipeline(
        "add",
        (EXTRACT_METADATA, VALIDATE_RECORD, PLAN_PATH, WRITE_ARTIFACT, COMMIT_RECORD),
        doc="add files: copied into managed storage, or registered where they are",
    )
)
#: Registering URIs arcodex does not manage.
ADD_EXTERNAL = register_pipeline(
    Pipeline(
        "add-external",
        (VALIDATE_URI, COMMIT_RECORD),
        doc="register URIs arcodex does not manage (nothing is fetched)",
    )
)
