"""Batch ingest: many files registered as ``add`` registers them, resumably.

The ``ingest-files`` pipeline is resolve-inputs → plan-ingest → ingest-batches:

- resolve-inputs expands files, globs, directories and manifests
  (:mod:`._ingest_inputs`) into one list of files;
- plan-ingest stats every file and asks the backend, in a few indexed queries, which
  of them a record was made from already (same path, size and mtime; with ``by_hash``
  also the same sha256): those are skipped, so that an ingest run again after a kill
  adds only the rest. A dry run also runs the add's checks on the files it would add
  (their metadata, record and schema, duplicates) and says which would fail;
- ingest-batches adds the files ``batch_size`` at a time. Each batch is one add
  operation, one unit of work: the add's steps (extract-metadata, validate-record,
  plan-path, write-artifact, commit-record, with their hooks), so every record is the
  one ``arcodex add`` makes. A kill loses at most the batch in flight, which
  ``arcodex recover`` rolls back (its copies removed, no record written).

A file that fails (unreadable, metadata that cannot be read under
``require_metadata``, a schema it fails under policy strict, a duplicate) is set
aside with its reason before its batch commits, and logged (``ingest.failed``); with
``continue_on_error`` the rest of the batch and the ingest go on, otherwise the
ingest stops there: the batches committed before stay, the failing batch adds
nothing, and the files not tried are ``pending`` (an ingest run again resumes).
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import nullcontext, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field

from arcodex.catalog._add_pipeline import (
    COMMIT_RECORD,
    EXTRACT_METADATA,
    PLAN_PATH,
    VALIDATE_RECORD,
    WRITE_ARTIFACT,
    FileOptions,
    FileRecordOptions,
    PlannedAdd,
    check_readable,
)
from arcodex.catalog._events import current_user
from arcodex.catalog._ingest_inputs import Wanted, resolve_inputs
from arcodex.catalog._metadata import metadata_of, pydantic_message
from arcodex.catalog._pipeline import (
    Pipeline,
    PipelineContext,
    Step,
    register_pipeline,
    run_pipeline,
)
from arcodex.catalog._pipeline import register_step as _register
from arcodex.catalog._schemas import Policy
from arcodex.catalog._writing import CatalogWriter
from arcodex.errors import ArcodexError, ValidationError
from arcodex.storage import hash_file

__all__ = ["INGEST_FILES", "IngestOptions", "IngestResult", "IngestedFile", "Ingesting"]

#: Files per batch (one unit of work each) unless the ingest says otherwise.
DEFAULT_BATCH_SIZE = 500
#: Called with (files done, files to do) as the ingest goes.
Progress = Callable[[int, int], None]


class IngestOptions(FileRecordOptions):
    """What an ingest is asked to do (the parameters of the ``ingest-files`` pipeline)."""

    inputs: list[str] = Field(default_factory=list, description="files, globs, directories")
    manifests: list[str] = Field(default_factory=list, description="manifest files")
    by_hash: bool = False
    continue_on_error: bool = False
    batch_size: int = Field(default=DEFAULT_BATCH_SIZE, ge=1)

    @classmethod
    def of(cls, params: Mapping[str, Any]) -> IngestOptions:
        """The options in a pipeline's params; a bad one is refused, named."""
        try:
            return cls.model_validate(dict(params))
        except ValueError as exc:
            raise ValidationError(f"bad ingest parameter {pydantic_message(exc)}") from None

    def add_params(self, paths: list[str]) -> dict[str, Any]:
        """The ``add`` pipeline's params for one batch of ``paths``."""
        return {"paths": paths, **self.record_params()}


INGEST_PARAMS = tuple(sorted(f.alias or name for name, f in IngestOptions.model_fields.items()))


@dataclass
class IngestedFile:
    """One file of an ingest and what became of it: its record (added, or the one that
    holds it when skipped), or why it was skipped or failed."""

    path: str
    record_id: str | None = None
    reason: str | None = None
    #: Where its artifact went (or would go, in a dry run).
    location: str | None = None

    @property
    def refusals(self) -> list[str]:
        """Why it failed (for :class:`PipelineRun`)."""
        return [self.reason] if self.reason else []

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "record_id": self.record_id,
            "reason": self.reason,
            "location": self.location,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IngestedFile:
        return cls(
            path=str(data["path"]),
            record_id=data.get("record_id"),
            reason=data.get("reason"),
            location=data.get("location"),
        )


@dataclass
class IngestResult:
    """What an ingest did, or in a dry run would do.

    Attributes:
        dry_run: nothing was changed; ``added`` is what would be added.
        added: files added, with their records.
        skipped: files the catalog holds already, with the record and why.
        failed: files that failed, with the reason.
        pending: files not tried, because the ingest stopped at a failure (it was not
            told to continue on error); run it again to resume.
        operation_ids: the add operation of each batch committed.
        seconds: wall time.
    """

    dry_run: bool = False
    added: list[IngestedFile] = field(default_factory=list)
    skipped: list[IngestedFile] = field(default_factory=list)
    failed: list[IngestedFile] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    operation_ids: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Nothing failed and nothing is left to do."""
        return not self.failed and not self.pending

    @property
    def counts(self) -> dict[str, int]:
        return {
            "added": len(self.added),
            "skipped": len(self.skipped),
            "failed": len(self.failed),
            "pending": len(self.pending),
        }

    @property
    def record_ids(self) -> list[str]:
        """The records added, in order."""
        return [f.record_id for f in self.added if f.record_id]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with stable keys."""
        return {
            "dry_run": self.dry_run,
            "ok": self.ok,
            "counts": self.counts,
            "added": [f.to_dict() for f in self.added],
            "skipped": [f.to_dict() for f in self.skipped],
            "failed": [f.to_dict() for f in self.failed],
            "pending": list(self.pending),
            "operation_ids": list(self.operation_ids),
            "seconds": round(self.seconds, 3),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IngestResult:
        return cls(
            dry_run=bool(data.get("dry_run")),
            added=[IngestedFile.from_dict(f) for f in data.get("added", ())],
            skipped=[IngestedFile.from_dict(f) for f in data.get("skipped", ())],
            failed=[IngestedFile.from_dict(f) for f in data.get("failed", ())],
            pending=[str(p) for p in data.get("pending", ())],
            operation_ids=[str(o) for o in data.get("operation_ids", ())],
            seconds=float(data.get("seconds", 0.0)),
        )


@dataclass
class _ToAdd:
    """A file the plan would add: where it is, and its manifest row's options."""

    path: str
    options: FileOptions
    sha256: str | None = None


class _Stopped(ArcodexError):
    """A batch found a failure and the ingest does not continue on error."""


# -- the steps -------------------------------------------------------------------------


def _opts(ctx: PipelineContext) -> IngestOptions:
    opts = ctx.state.get("options")
    if not isinstance(opts, IngestOptions):
        opts = IngestOptions.of(ctx.params)
        ctx.state["options"] = opts
    return opts


def _result(ctx: PipelineContext) -> IngestResult:
    result = ctx.state.get("result")
    if not isinstance(result, IngestResult):
        result = IngestResult(dry_run=ctx.dry_run)
        ctx.state["result"] = result
    return result


def resolve_inputs_step(ctx: PipelineContext) -> None:
    """Expand the files, globs, directories and manifests into the files to ingest."""
    opts = _opts(ctx)
    ctx.state["wanted"] = resolve_inputs(opts.inputs, opts.manifests)


def plan_ingest(ctx: PipelineContext) -> None:
    """Stat every file and decide: skip it (the catalog holds it: same path, size and
    mtime, or with by_hash the same sha256), fail it (not there, not readable), or add
    it. A dry run also runs the add's checks on the files it would add."""
    catalog = ctx.need_catalog()
    opts = _opts(ctx)
    result = _result(ctx)
    wanted: list[Wanted] = ctx.need("wanted", "resolve-inputs")
    candidates: list[tuple[str, os.stat_result, FileOptions]] = []
    seen: dict[str, str] = {}
    for item in wanted:
        try:
            info = _readable(item.path, in_place=opts.in_place)
            real = os.path.realpath(item.path)
        except (ArcodexError, OSError) as exc:
            result.failed.append(IngestedFile(item.path, reason=_reason(item.path, exc)))
            continue
        if real in seen:
            why = f"the same file as {seen[real]} (another name for it)"
            result.skipped.append(IngestedFile(item.path, reason=why))
            continue
        seen[real] = item.path
        candidates.append((real, info, item.options))
    held: dict[str, list[tuple[str, str, int | None, int | None]]] = {}
    for source, record_id, status, size, mtime in catalog.backend.sources(
        [c[0] for c in candidates]
    ):
        held.setdefault(source, []).append((record_id, status, size, mtime))
    to_add: list[_ToAdd] = []
    for path, info, options in candidates:
        same = [
            (rid, status)
            for rid, status, size, mtime in held.get(path, ())
            if size == info.st_size and mtime == info.st_mtime_ns
        ]
        if same:
            rid, status = same[0]
            why = "in the catalog already (same path, size and mtime)"
            if status == "deleted":
                why += f"; its record is deleted, `arcodex restore {rid}` brings it back"
            result.skipped.append(IngestedFile(path, record_id=rid, reason=why))
            continue
        to_add.append(_ToAdd(path, options))
    if opts.by_hash:
        to_add = _skip_same_content(ctx, to_add, result)
    ctx.state["to_add"] = to_add
    _progress(ctx, 0, len(to_add))
    if ctx.dry_run:
        _check_dry(ctx, to_add, result)


def _skip_same_content(
    ctx: PipelineContext, to_add: list[_ToAdd], result: IngestResult
) -> list[_ToAdd]:
    """Hash each file; skip those whose content a record holds, or an earlier file of
    this ingest has."""
    catalog = ctx.need_catalog()
    hashed: list[_ToAdd] = []
    for item in to_add:
        try:
            item.sha256 = hash_file(Path(item.path))[1]
        except OSError as exc:
            result.failed.append(IngestedFile(item.path, reason=_reason(item.path, exc)))
            continue
        hashed.append(item)
    holders: dict[str, str] = {}
    for digest, record_id, _status in catalog.backend.holders(
        sha256=[i.sha256 for i in hashed if i.sha256]
    ):
        holders.setdefault(digest, record_id)
    kept: list[_ToAdd] = []
    first: dict[str, str] = {}
    for item in hashed:
        digest = str(item.sha256)
        if digest in holders:
            result.skipped.append(
                IngestedFile(
                    item.path,
                    record_id=holders[digest],
                    reason="in the catalog already (same sha256, --by-hash)",
                )
            )
        elif digest in first:
            result.skipped.append(
                IngestedFile(
                    item.path, reason=f"same content as {first[digest]} (same sha256, --by-hash)"
                )
            )
        else:
            first[digest] = item.path
            kept.append(item)
    return kept


def _check_dry(ctx: PipelineContext, to_add: list[_ToAdd], result: IngestResult) -> None:
    """The add's checks (the steps that change nothing), batch by batch."""
    opts = _opts(ctx)
    seen: dict[str, str] = {}
    done = 0
    for batch in _batches(to_add, opts.batch_size):
        sub = _batch_context(ctx, batch, dry_run=True)
        run_pipeline(_DRY_BATCH, sub)
        for item in sub.state["plan"]:
            record = item.record
            if not item.refusals and item.sha256 and item.sha256 in seen:
                item.refusals.append(f"{item.source} is the same file as {seen[item.sha256]}")
            if item.refusals or record is None:
                reason = "; ".join(item.refusals) or "its record could not be made"
                result.failed.append(IngestedFile(item.source, reason=reason))
                continue
            if item.sha256:
                seen.setdefault(item.sha256, item.source)
            result.added.append(
                IngestedFile(item.source, record_id=record.id, location=item.location)
            )
        done += len(batch)
        _progress(ctx, done, len(to_add))


def ingest_batches(ctx: PipelineContext) -> None:
    """Add the files batch by batch, each batch one add operation (a unit of work);
    set each failing file aside with its reason, and go on or stop as told."""
    catalog = ctx.need_catalog()
    opts = _opts(ctx)
    result = _result(ctx)
    to_add: list[_ToAdd] = ctx.need("to_add", "plan-ingest")
    for failure in result.failed:
        _log_failure(ctx, failure)
    done = 0
    if result.failed and not opts.continue_on_error:
        result.pending = [item.path for item in to_add]
        to_add = []
    for number, batch in enumerate(_batches(to_add, opts.batch_size)):
        sub = _batch_context(ctx, batch, dry_run=False)
        failed_before = len(result.failed)
        try:
            run_pipeline(_CHECK_BATCH, sub)
            if sub.state["files"]:
                run_pipeline(_WRITE_BATCH, sub)
        except _Stopped:
            pass
        for path, record_id in sub.state["meanwhile"]:
            why = "in the catalog already (added by another ingest while this one ran)"
            result.skipped.append(IngestedFile(path, record_id=record_id, reason=why))
        for item in sub.state["set_aside"]:
            failure = IngestedFile(item.source, reason="; ".join(item.refusals))
            result.failed.append(failure)
            _log_failure(ctx, failure)
        if len(result.failed) > failed_before and not opts.continue_on_error:
            stopped_at = {f.path for f in result.failed[failed_before:]}
            result.pending = [i.path for i in batch if i.path not in stopped_at]
            result.pending += [i.path for i in to_add[(number + 1) * opts.batch_size :]]
            break
        committed = {r.id for r in sub.state.get("records") or ()}
        for item in sub.state["plan"]:
            if item.record is not None and item.record.id in committed:
                result.added.append(
                    IngestedFile(item.source, record_id=item.record.id, location=item.location)
                )
        if sub.operation_id:
            result.operation_ids.append(sub.operation_id)
        done += len(batch)
        _progress(ctx, done, len(to_add))
    counts = result.counts
    with suppress(ArcodexError):
        catalog.events.emit(
            "ingest.finished",
            f"ingest added {counts['added']}, skipped {counts['skipped']}, "
            f"failed {counts['failed']}"
            + (f", left {counts['pending']}" if result.pending else ""),
            level="warning" if not result.ok else "info",
            user=ctx.user,
            counts=counts,
            operations=result.operation_ids[:100],
        )


def set_aside_failures(ctx: PipelineContext) -> None:
    """Take the files refused so far out of the batch (with their reasons); when the
    ingest does not continue on error, stop the batch (rolling back what it wrote)."""
    files: list[Path] = ctx.state["files"]
    plan: list[PlannedAdd] = ctx.state["plan"]
    options: list[FileOptions] = ctx.state["file_options"]
    refused = [i for i, item in enumerate(plan) if item.refusals]
    if not refused:
        return
    # A file another ingest added since the plan looked is skipped, not failed.
    held = _held_now(ctx.need_catalog(), [plan[i].source for i in refused])
    ctx.state["meanwhile"].extend(
        (plan[i].source, held[plan[i].source]) for i in refused if plan[i].source in held
    )
    failing = [plan[i] for i in refused if plan[i].source not in held]
    ctx.state["set_aside"].extend(failing)
    if failing and not ctx.state["continue_on_error"]:
        raise _Stopped("a file of the batch failed")
    gone = set(refused)
    ctx.state["files"] = [f for i, f in enumerate(files) if i not in gone]
    ctx.state["plan"] = [p for i, p in enumerate(plan) if i not in gone]
    ctx.state["file_options"] = [o for i, o in enumerate(options) if i not in gone]


# -- helpers ---------------------------------------------------------------------------


def _batches(items: list[_ToAdd], size: int) -> Iterable[list[_ToAdd]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _batch_context(ctx: PipelineContext, batch: list[_ToAdd], *, dry_run: bool) -> PipelineContext:
    """A context for the add steps on one batch: its files, checked already by the plan,
    with their manifest options; refusals are kept, not raised."""
    opts = _opts(ctx)
    paths = [item.path for item in batch]
    sub = PipelineContext(ctx.catalog, opts.add_params(paths), dry_run=dry_run, user=ctx.user)
    sub.state.update(
        files=[Path(p) for p in paths],
        plan=[PlannedAdd(p) for p in paths],
        file_options=[item.options for item in batch],
        keep_going=True,
        continue_on_error=opts.continue_on_error,
        set_aside=[],
        meanwhile=[],
    )
    return sub


def _held_now(catalog: CatalogWriter, paths: list[str]) -> dict[str, str]:
    """The record each of ``paths`` is held by now (same path, size and mtime), by path."""
    held: dict[str, str] = {}
    for source, record_id, _status, size, mtime in catalog.backend.sources(paths):
        with suppress(OSError):
            info = os.stat(source)
            if size == info.st_size and mtime == info.st_mtime_ns:
                held.setdefault(source, record_id)
    return held


def _progress(ctx: PipelineContext, done: int, total: int) -> None:
    report = ctx.state.get("progress")
    if callable(report):
        report(done, total)


def _log_failure(ctx: PipelineContext, failed: IngestedFile) -> None:
    catalog = ctx.need_catalog()
    with suppress(ArcodexError):
        catalog.events.emit(
            "ingest.failed",
            f"ingest of {failed.path} failed: {failed.reason}",
            level="warning",
            user=ctx.user,
            path=failed.path,
            reason=failed.reason,
        )


def _readable(path: str, *, in_place: bool) -> os.stat_result:
    """The stat of a file to add, once it is known to be readable (the add's own check,
    :func:`check_readable`, says why not; this is its fast path for plain files)."""
    try:
        info = os.stat(path)
        if stat.S_ISREG(info.st_mode):
            os.close(os.open(path, os.O_RDONLY))
            return info
    except OSError:
        pass
    check_readable(Path(path), in_place=in_place)  # raises, saying why
    return os.stat(path)  # a directory, registered in place


def _reason(path: str, exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return f"cannot read {path}: {exc.strerror or exc}"
    return str(exc)


def _step(name: str, fn: Any, *, changes: bool, inputs: str | None = None) -> Step:
    doc = " ".join((fn.__doc__ or "").split("\n\n")[0].split())
    return Step(name, fn, changes=changes, doc=doc, params=INGEST_PARAMS, inputs=inputs)


RESOLVE_INPUTS = _register(
    _step("resolve-inputs", resolve_inputs_step, changes=False, inputs="inputs")
)
PLAN_INGEST = _register(_step("plan-ingest", plan_ingest, changes=False))
INGEST_BATCHES = _register(_step("ingest-batches", ingest_batches, changes=True))
#: Not registered: it works inside a batch, on the add's state.
SET_ASIDE = Step(
    "set-aside-failures",
    set_aside_failures,
    changes=False,
    doc="take the files refused so far out of the batch",
)

#: Registering many files, batch by batch, resumably.
INGEST_FILES = register_pipeline(
    Pipeline(
        "ingest-files",
        (RESOLVE_INPUTS, PLAN_INGEST, INGEST_BATCHES),
        doc="register many files as add does, in batches (one unit of work each), resumably",
    )
)
#: One batch: the add's checks, then (if any file is left) its writes.
_CHECK_BATCH = Pipeline("ingest-batch", (EXTRACT_METADATA, VALIDATE_RECORD, SET_ASIDE))
_WRITE_BATCH = Pipeline("ingest-batch", (PLAN_PATH, WRITE_ARTIFACT, SET_ASIDE, COMMIT_RECORD))
_DRY_BATCH = Pipeline("ingest-batch", (EXTRACT_METADATA, VALIDATE_RECORD, PLAN_PATH))


class Ingesting(CatalogWriter):
    """The part of a catalog that ingests many files at once."""

    def ingest_files(
        self,
        inputs: Sequence[str | os.PathLike[str]] = (),
        *,
        manifests: Sequence[str | os.PathLike[str]] = (),
        kind: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        tags: Iterable[str] = (),
        in_place: bool = False,
        extract: bool = True,
        profile: str | None = None,
        schema: str | None = None,
        schema_policy: Policy | None = None,
        require_metadata: bool = False,
        by_hash: bool = False,
        continue_on_error: bool = False,
        batch_size: int = DEFAULT_BATCH_SIZE,
        dry_run: bool = False,
        progress: Progress | None = None,
        user: str | None = None,
    ) -> IngestResult:
        """Register many files (files, globs, directories, ``manifests``) as
        :meth:`add_files` registers them, ``batch_size`` files to a unit of work.

        Files the catalog holds already (same path, size and mtime; with ``by_hash`` the
        same content) are skipped, so running an interrupted ingest again adds only the
        rest. A failing file is set aside with its reason; with ``continue_on_error`` the
        others go on, otherwise the ingest stops at the first batch with a failure (that
        batch adds nothing; the batches before stay). ``dry_run`` says what would be
        added, skipped and refused, and changes nothing (catalog, files, event log).

        The operation is the ``ingest-files`` pipeline (resolve-inputs, plan-ingest,
        ingest-batches; see :mod:`arcodex.catalog._ingest`). An input that names nothing
        (no such file, a glob that matches nothing, a bad manifest) is refused with one
        line, and nothing is changed.
        """
        user = user or current_user()
        params: dict[str, Any] = {
            "inputs": [os.fspath(p) for p in inputs],
            "manifests": [os.fspath(p) for p in manifests],
            "kind": kind,
            "metadata": metadata_of(metadata),
            "tags": list(tags),
            "in_place": in_place,
            "extract": extract,
            "profile": profile,
            "schema": schema,
            "schema_policy": schema_policy,
            "require_metadata": require_metadata,
            "by_hash": by_hash,
            "continue_on_error": continue_on_error,
            "batch_size": batch_size,
        }
        started = time.perf_counter()
        ctx = PipelineContext(self, params, dry_run=dry_run, user=user)
        ctx.state["progress"] = progress
        # A dry run leaves the event log as it was, refusals included.
        with self.events.muted() if dry_run else nullcontext(), self._checking("ingest", user):
            run_pipeline(INGEST_FILES, ctx)
        result = _result(ctx)
        result.seconds = time.perf_counter() - started
        return result
