"""``run_group``: a group's members through ``scan``, ``compute`` and ``validate``.

The members run in parallel, each in a thread of the coordinator driving its own
conversion against one shared Dask client (the heavy work is the cluster's). Each
phase of a member is one unit of work: the member is written ``running`` at once
(journaled, with the record as it was), then its outcome; a failure is the member's
outcome and nothing else's. A killed run leaves the unit open, and ``recover``
writes the member back as it was (the conversion's own unit removes its partial
product); a product that was committed before the kill is adopted by the next run.

Re-running resumes: a phase already ``done`` (or ``warn``) with the same sources
(paths, sizes and modification times) and the same spec is skipped. A member left
``running`` by a process that is gone blocks nothing: the run recovers the catalog's
interrupted operations first (as ``arcodex recover`` does), then runs it.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from arcodex.errors import ConflictError, NotFoundError, ValidationError
from arcodex.groups._api import open_catalog
from arcodex.groups._records import (
    HISTORY,
    LOG_LINES,
    MEMBER_OF,
    PHASES,
    MemberStatus,
    get_group,
    member_records,
    product_of,
)

if TYPE_CHECKING:
    from arcodex.catalog import Catalog
    from arcodex.catalog._opstate import Leases
    from arcodex.convert import ConvertSpec
    from arcodex.model import Record

__all__ = ["GroupRun", "MemberOutcome", "run_group"]

Phase = Literal["scan", "compute", "validate", "run"]
#: ``progress(member, phase, status)``: a member's phase started (``running``) or ended.
Progress = Callable[[str, str, str], Any]
#: Members converted at once: each drives its own conversion on the shared cluster.
MAX_PARALLEL = 4
_VERDICT = {"pass": "done", "warn": "warn", "fail": "failed", "unchecked": "done"}


@dataclass
class MemberOutcome:
    """What one member's run did: the last phase it ran, its status and why."""

    id: str
    status: str  # done | warn | failed | skipped | running (elsewhere)
    phase: str | None = None
    reason: str | None = None
    seconds: float = 0.0
    bytes: int | None = None
    operation: str | None = None
    product: str | None = None
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    attempts: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "seconds": round(self.seconds, 3)}


@dataclass
class GroupRun:
    """What ``run_group`` did to each member it was asked to run."""

    name: str
    phase: str
    members: list[MemberOutcome] = field(default_factory=list)
    seconds: float = 0.0
    #: The operations of a killed run that this run recovered first.
    recovered: list[str] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(("done", "warn", "failed", "skipped", "running"), 0)
        for member in self.members:
            counts[member.status] = counts.get(member.status, 0) + 1
        return counts

    @property
    def failed(self) -> list[MemberOutcome]:
        return [m for m in self.members if m.status == "failed"]

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def exit_code(self) -> int:
        """The CLI's exit status: 1 when any member failed."""
        return 0 if self.ok else 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "phase": self.phase,
            "ok": self.ok,
            "counts": self.counts,
            "seconds": round(self.seconds, 3),
            "recovered": list(self.recovered),
            "members": [m.to_dict() for m in self.members],
        }


@dataclass
class _Context:
    cat: Catalog
    name: str
    client: Any
    user: str | None
    retries: int
    progress: Progress | None

    def say(self, member: str, phase: str, status: str) -> None:
        if self.progress is not None:
            self.progress(member, phase, status)


def run_group(
    catalog: Catalog | str | os.PathLike[str],
    name: str,
    *,
    phase: Phase = "run",
    only: Literal["failed", "pending"] | None = None,
    members: Sequence[str] | None = None,
    retries: int = 0,
    cluster: Any = None,
    progress: Progress | None = None,
    user: str | None = None,
) -> GroupRun:
    """Run ``phase`` (``scan``, ``compute``, ``validate``, or ``run``: all three in order,
    stopping at a member's first failure) for the group's members, in parallel on one
    Dask cluster.

    Args:
        catalog: The catalog holding the group (a Catalog or its path).
        name: The group.
        phase: What to run.
        only: Only the members whose status is ``failed`` (or ``pending``).
        members: Only these member ids.
        retries: Run a failed phase again up to this many times.
        cluster: ``local``, ``threads``, ``tcp://…``, ``slurm``, ``pbs`` or a
            ``distributed.Client``; default: the catalog config's ``cluster``. Every
            member runs on it (a member spec's own ``cluster`` is not used).
        progress: ``progress(member, phase, status)`` as each phase starts and ends.
        user: Who to record.

    Returns:
        A :class:`GroupRun`; ``exit_code`` is 1 when any member failed.
    """
    from arcodex.convert._access import cluster_config
    from arcodex.convert._cluster import open_client
    from arcodex.convert._scan import scans_remembered

    if phase not in ("scan", "compute", "validate", "run"):
        raise ValidationError(f"unknown phase {phase!r}; use scan, compute, validate or run")
    if only not in (None, "failed", "pending"):
        raise ValidationError(f"unknown --only {only!r}; use failed or pending")
    if retries < 0:
        raise ValidationError("retries is a count: 0 or more")
    started = time.perf_counter()
    with ExitStack() as stack:
        cat = open_catalog(catalog, stack)
        get_group(cat, name)
        records = member_records(cat, name)
        run = GroupRun(name, phase)
        if any(MemberStatus.of(r, cat.leases).stale for r in records):
            # A run was killed: finish or undo what its dead process left (a partial
            # product in a member's place, the member written `running`) before going on.
            run.recovered = [r.operation_id for r in cat.recover() if r.operation_id != "-"]
            records = member_records(cat, name)
        chosen = _choose(records, name, only, members, cat.leases)
        busy = [r for r in chosen if _busy(r, cat.leases)]
        for record in busy:
            claim = record.metadata.get("run") or {}
            pid, host = claim.get("pid"), claim.get("host")
            run.members.append(
                MemberOutcome(
                    str(record.metadata["member"]),
                    "running",
                    record.metadata.get("phase"),
                    f"running in process {pid} on {host}; wait for it, or stop it and run "
                    "`arcodex recover`",
                )
            )
        todo = [r for r in chosen if r not in busy]
        phases = PHASES if phase == "run" else (phase,)
        if todo:
            _import_engine(todo)
            client = stack.enter_context(open_client(cluster, config=cluster_config(cat)))
            ctx = _Context(cat, name, client, user, retries, progress)
            with (
                _warnings_kept_quiet(),
                scans_remembered(),  # scan, compute and validate read the same files
                ThreadPoolExecutor(max_workers=min(len(todo), MAX_PARALLEL)) as pool,
            ):
                futures = [pool.submit(_run_member, ctx, r, phases) for r in todo]
                outcomes = [f.result() for f in futures]
            run.members = outcomes + run.members
        order = {str(r.metadata["member"]): i for i, r in enumerate(records)}
        run.members.sort(key=lambda m: order.get(m.id, 0))
        run.seconds = time.perf_counter() - started
        return run


def _choose(
    records: list[Record],
    name: str,
    only: str | None,
    members: Sequence[str] | None,
    leases: Leases,
) -> list[Record]:
    if members:
        known = {str(r.metadata.get("member")) for r in records}
        unknown = [m for m in members if m not in known]
        if unknown:
            raise NotFoundError(
                f"group {name} has no member {unknown[0]!r}; run `arcodex group status {name}`"
            )
        records = [r for r in records if r.metadata.get("member") in set(members)]
    if only is not None:
        records = [r for r in records if MemberStatus.of(r, leases).status == only]
    return records


def _busy(record: Record, leases: Leases) -> bool:
    """A member another live process (of any host sharing the catalog) is running."""
    status = MemberStatus.of(record, leases)
    return record.metadata.get("status") == "running" and not status.stale


@contextmanager
def _warnings_kept_quiet() -> Iterator[None]:
    """The warnings a conversion silences on purpose, silenced for the whole run.

    A conversion silences them in ``warnings.catch_warnings()`` blocks, which save and
    restore the process's one filter list: with conversions in several threads, one
    leaving its block restores the filters under another still inside its own.
    """
    with warnings.catch_warnings():
        # Consolidated metadata is not part of the Zarr 3 spec; arcodex writes it on purpose.
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
        # All-NaN windows of a pyramid level and all-NaN coordinates are described as such.
        warnings.filterwarnings("ignore", message=".*(All-NaN|Mean of empty).*")
        yield


# -- one member ----------------------------------------------------------------------


def _run_member(ctx: _Context, record: Record, phases: Sequence[str]) -> MemberOutcome:
    from arcodex.convert import ConvertSpec

    member = str(record.metadata["member"])
    outcome = MemberOutcome(member, "skipped")
    started = time.perf_counter()
    try:
        spec = ConvertSpec.from_dict(record.metadata["spec"])
        digest = _digest(record.metadata["spec"])
        fingerprint = _fingerprint(ctx.cat, spec)
        current = record
        for phase in phases:
            if _unchanged(current, phase, fingerprint, digest):
                outcome.skipped.append(phase)
                continue
            for attempt in range(ctx.retries + 1):
                if attempt:
                    # The sources may have been fixed since: look again.
                    fingerprint = _fingerprint(ctx.cat, spec)
                outcome.attempts += 1
                current, found = _run_phase(ctx, current, phase, spec, fingerprint, digest)
                if found["status"] != "failed":
                    break
            outcome.ran.append(phase)
            outcome.phase = phase
            outcome.status = str(found["status"])
            outcome.reason = found.get("reason")
            outcome.operation = found.get("operation") or outcome.operation
            outcome.product = found.get("product") or outcome.product
            outcome.bytes = found.get("bytes", outcome.bytes)
            if outcome.status == "failed":
                break
        if not outcome.ran:
            meta = current.metadata
            outcome.phase, outcome.product = meta.get("phase"), meta.get("product")
            outcome.reason = "done before with the same sources and spec"
    except _Taken:
        outcome.status = "running"
        outcome.reason = (
            f"another run of group {ctx.name} took it first; see `arcodex group status {ctx.name}`"
        )
    except Exception as exc:  # one member's surprise is its failure, never the group's
        outcome.status, outcome.reason = "failed", _one_line(exc)
    outcome.seconds = time.perf_counter() - started
    return outcome


#: What members' conversions import on first use, imported before they start: two threads
#: importing one package for the first time can deadlock in its circular imports (seen
#: with xarray: "deadlock detected by _ModuleLock", then "partially initialized module").
_ENGINE_MODULES = (
    "numpy", "xarray", "zarr", "zarr.storage", "zarr.codecs", "numcodecs", "fsspec",
    "cftime", "netCDF4", "h5py", "h5netcdf", "imagecodecs", "xxhash",
)  # fmt: skip
_ICECHUNK_MODULES = ("icechunk",)
_VIRTUAL_MODULES = ("virtualizarr", "virtualizarr.manifests.utils", "kerchunk", "obstore.store")


def _import_engine(members: Sequence[Record]) -> None:
    """Import, in this thread, every module the members' conversions will need."""
    import importlib
    import pkgutil

    import arcodex.convert

    targets = {(r.metadata.get("spec") or {}).get("to") for r in members}
    names = list(_ENGINE_MODULES)
    if targets & {"icechunk", "virtual"}:  # virtual products are Icechunk by default
        names += _ICECHUNK_MODULES
    if "virtual" in targets:
        names += _VIRTUAL_MODULES
    names += [m.name for m in pkgutil.iter_modules(arcodex.convert.__path__, "arcodex.convert.")]
    for name in names:
        with suppress(ImportError):  # an optional part a member does not use
            importlib.import_module(name)


class _Taken(Exception):
    """The member's record changed between reading and claiming it: another run has it."""


def _unchanged(record: Record, phase: str, fingerprint: str | None, digest: str) -> bool:
    """Whether ``phase`` is done for the sources and spec as they are now."""
    phases = record.metadata.get("phases") or {}
    last = phases.get(phase) or {}
    if last.get("status") not in ("done", "warn") or fingerprint is None:
        return False
    if last.get("fingerprint") != fingerprint or last.get("spec") != digest:
        return False
    # A validation is of the product the last compute made.
    return phase != "validate" or last.get("after") == (phases.get("compute") or {}).get("at")


def _run_phase(
    ctx: _Context,
    current: Record,
    phase: str,
    spec: ConvertSpec,
    fingerprint: str | None,
    digest: str,
) -> tuple[Record, dict[str, Any]]:
    """One phase of one member in its own unit of work: ``running`` first, then the outcome."""
    from arcodex.model import utcnow

    cat, meta = ctx.cat, current.metadata
    member = str(meta["member"])
    started = time.perf_counter()
    with cat.unit_of_work(
        "group-member",
        user=ctx.user,
        inputs=[current.id],
        parameters={"group": ctx.name, "member": member, "phase": phase},
    ) as uow:
        previous = meta.get("previous") if meta.get("status") == "running" else meta.get("status")
        running = _changed(
            current,
            {
                "status": "running",
                "previous": previous or "pending",
                "phase": phase,
                "run": {
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "since": utcnow().isoformat(),
                    "operation": uow.operation.id,
                },
            },
            f"{phase} started",
            ctx.user,
        )
        try:
            running = cat._stage_record(uow, current, running)
        except ConflictError:
            raise _Taken(member) from None
        ctx.say(member, phase, "running")
        try:
            found = _PHASES[phase](ctx, running, spec, fingerprint, digest)
        except Exception as exc:  # the member's failure: recorded, and the rest go on
            found = {"status": "failed", "reason": _one_line(exc)}
        seconds = time.perf_counter() - started
        now = utcnow().isoformat()
        phases = dict(running.metadata.get("phases") or {})
        phases[phase] = {
            "status": found["status"],
            "reason": found.get("reason"),
            "at": now,
            "seconds": round(seconds, 3),
            "fingerprint": fingerprint,
            "spec": digest,
            "operation": found.get("operation") or uow.operation.id,
            **({"after": (phases.get("compute") or {}).get("at")} if phase == "validate" else {}),
        }
        changes: dict[str, Any] = {
            "status": found["status"],
            "previous": None,
            "run": None,
            "phase": phase,
            "reason": found.get("reason"),
            # Every phase's latest time: what the member has cost so far.
            "seconds": round(sum(float(p.get("seconds") or 0) for p in phases.values()), 3),
            "operation": found.get("operation") or uow.operation.id,
            "phases": phases,
            "fingerprint": fingerprint,
        }
        for key in ("scan", "check", "product", "bytes"):
            if key in found:
                changes[key] = found[key]
        detail = f": {found['reason']}" if found.get("reason") else ""
        final = _changed(running, changes, f"{phase} {found['status']}{detail}", ctx.user)
        uow.transition("planned", records=[current.id], version=running.version)
        final = cat._replace_record(uow, running, final)
    ctx.say(member, phase, str(found["status"]))
    return final, found


def _changed(record: Record, changes: Mapping[str, Any], line: str, user: str | None) -> Record:
    """``record`` with metadata ``changes``, a log line, and the status change in its history."""
    from arcodex.model import Record, utcnow

    meta = dict(record.metadata)
    now = utcnow()
    log = [*(meta.get("log") or []), f"{now.isoformat()} {line}"][-LOG_LINES:]
    history = list(meta.get("history") or [])
    if changes.get("status") and changes.get("status") != meta.get("status"):
        entry = {
            "at": now.isoformat(),
            "status": changes["status"],
            "phase": changes.get("phase"),
            "reason": changes.get("reason"),
        }
        history = [*history, entry][-HISTORY:]
    meta.update(changes)
    meta["log"], meta["history"] = log, history
    return Record.model_validate(
        {
            **record.model_dump(),
            "metadata": json.loads(json.dumps(meta, default=str)),
            "version": record.version + 1,
            "updated_at": now,
            "updated_by": user or record.updated_by,
        }
    )


# -- the phases ----------------------------------------------------------------------


def _scan(
    ctx: _Context, record: Record, spec: ConvertSpec, fingerprint: str | None, digest: str
) -> dict[str, Any]:
    """Sources readable, ordered and compatible, and the product's estimated size (a dry run)."""
    from arcodex.convert import convert

    existing = product_of(ctx.cat, ctx.name, str(record.metadata["member"]))
    planned = spec.replace(overwrite=True) if existing is not None else spec
    result = convert(planned, catalog=ctx.cat, cluster=ctx.client, dry_run=True, user=ctx.user)
    data = result.to_dict()
    layout = data.get("layout") or {}
    warnings = list(data.get("warnings") or [])
    summary = {
        "sources": data["sources"],
        "steps": data["steps"],
        "first": data["first"],
        "last": data["last"],
        "concat_dim": result.plan.concat_dim,
        "variables": data["variables"],
        "dims": layout.get("dims"),
        "format": layout.get("format"),
        "size": layout.get("size"),
        "warnings": warnings,
    }
    return {
        "status": "warn" if warnings else "done",
        "reason": warnings[0] if warnings else None,
        "scan": summary,
    }


def _compute(
    ctx: _Context, record: Record, spec: ConvertSpec, fingerprint: str | None, digest: str
) -> dict[str, Any]:
    """Convert (checked as the spec says), or adopt the product an earlier run made."""
    from arcodex.convert import convert

    member = str(record.metadata["member"])
    existing = product_of(ctx.cat, ctx.name, member)
    if existing is not None:
        made = existing.metadata.get(MEMBER_OF) or {}
        same = fingerprint is not None and made.get("fingerprint") == fingerprint
        if same and made.get("spec") == digest:
            return _adopted(existing)
    member_of = {"group": ctx.name, "member": member, "fingerprint": fingerprint, "spec": digest}
    run = spec.replace(
        metadata={**(spec.metadata or {}), MEMBER_OF: member_of},
        overwrite=spec.overwrite or existing is not None,
    )
    result = convert(run, catalog=ctx.cat, cluster=ctx.client, user=ctx.user)
    report = result.report
    status = _VERDICT[report.status] if report is not None else "done"
    return {
        "status": status,
        "reason": report.warnings[0] if report is not None and report.warnings else None,
        "operation": result.operation_id,
        "product": result.record.id if result.record is not None else None,
        "bytes": result.bytes_written,
        **({"check": report.to_dict()} if report is not None else {}),
    }


def _adopted(existing: Record) -> dict[str, Any]:
    """The outcome of a product made for the member before (its record was committed, the
    member's not: a run killed in between)."""
    convert_meta = existing.metadata.get("convert") or {}
    primary = next((a for a in existing.artifacts if a.role == "primary"), None)
    operation = existing.lineage[-1].operation_id if existing.lineage else None
    return {
        "status": _VERDICT.get(str(convert_meta.get("check")), "done"),
        "reason": "adopted the product an earlier run made",
        "operation": operation,
        "product": existing.id,
        "bytes": primary.size_bytes if primary is not None else None,
    }


def _validate(
    ctx: _Context, record: Record, spec: ConvertSpec, fingerprint: str | None, digest: str
) -> dict[str, Any]:
    """The full check of the member's product against its sources (every value)."""
    from arcodex.convert import check

    meta = record.metadata
    existing = product_of(ctx.cat, ctx.name, str(meta["member"]))
    if existing is None:
        return {
            "status": "failed",
            "reason": f"no product yet; run `arcodex group run {ctx.name} --phase compute` first",
        }
    report = check(existing.id, catalog=ctx.cat, full=True, cluster=ctx.client)
    status = _VERDICT[report.status]
    reason = None
    if report.status == "fail" and report.reasons:
        more = f" (and {len(report.reasons) - 1} more)" if len(report.reasons) > 1 else ""
        reason = f"{report.reasons[0]}{more}"
    elif report.warnings:
        reason = report.warnings[0]
    return {"status": status, "reason": reason, "product": existing.id, "check": report.to_dict()}


_PHASES: dict[str, Callable[..., dict[str, Any]]] = {
    "scan": _scan,
    "compute": _compute,
    "validate": _validate,
}


# -- what makes sources "unchanged" ----------------------------------------------------


def _fingerprint(cat: Catalog, spec: ConvertSpec) -> str | None:
    """The digest of the resolved sources with their sizes and modification times (None
    when they cannot be resolved: the phase then runs, and says why it fails)."""
    from arcodex.convert._access import source_options
    from arcodex.convert._sources import _fingerprint as one
    from arcodex.convert._sources import resolve_sources

    try:
        refs = resolve_sources(spec.sources, source_options(cat, spec.source_profile, None))
        items = [[r.url, one(r)[1]] for r in refs]
    except Exception:
        return None
    return hashlib.sha256(json.dumps(items).encode()).hexdigest()[:32]


def _digest(spec: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:32]


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:500]
