"""Updating a product: append new steps, rewrite changed sources, add variables.

The product's provenance says which sources it holds, where, and with which
fingerprint. The given sources plus the recorded ones are planned again as
one archive (so every consistency rule of a conversion applies), then
compared with the product:

- a recorded source whose fingerprint changed is rewritten in place (it must
  keep its steps);
- sources after the product's last step are appended;
- variables the product lacks are added (the sources must cover the product);
- anything else — steps before the start or between existing steps, other
  dims, dtypes, packing or chunks — is refused before anything is written.

Zarr stores are not transactional, so before writing the metadata and every
chunk the update will touch are copied aside; a failure restores them and
removes what was added. Icechunk updates are one commit (or none).
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from arcodex.convert._attrs import AttrFixes
from arcodex.convert._plan import Plan, PlannedSource, build_plan, jsonable
from arcodex.convert._product import PROVENANCE_ATTR, Product
from arcodex.convert._sources import DATASET_SCHEME, SourceRef, SourceScan, scan_source
from arcodex.convert._spec import IN_MEMORY
from arcodex.errors import ConversionError

if TYPE_CHECKING:
    from arcodex.catalog._journal import UnitOfWork

__all__ = ["Delta", "apply", "prepare"]

Progress = Callable[[str, int, int], None]


@dataclass
class Delta:
    """What an update changes."""

    plan: Plan
    old_length: int
    changed: list[PlannedSource] = field(default_factory=list)
    appended: list[PlannedSource] = field(default_factory=list)
    new_variables: set[str] = field(default_factory=set)
    provenance: dict[str, Any] = field(default_factory=dict)
    #: Put the product back as it was (set while a non-transactional write is under way).
    undo: Callable[[], None] = lambda: None
    #: Drop what ``undo`` needs, once the update is kept.
    cleanup: Callable[[], None] = lambda: None

    @property
    def nothing_to_do(self) -> bool:
        return not (self.changed or self.appended or self.new_variables)

    def appended_sources(self) -> list[str]:
        return [s.url for s in self.appended]

    def changed_sources(self) -> list[str]:
        return [s.url for s in self.changed]

    def changes(self) -> dict[str, Any]:
        return {
            "appended_steps": self.plan.length - self.old_length,
            "appended_sources": len(self.appended),
            "overwritten_sources": len(self.changed),
            "new_variables": sorted(self.new_variables),
        }

    def waves(self) -> list[tuple[int, int]]:
        """Concat ranges to rewrite, one after another (no two share a chunk within a wave)."""
        ranges = [(s.start, s.start + s.length) for s in self.changed]
        if self.appended:
            ranges.append((self.old_length, self.plan.length))
        return sorted(ranges)


def prepare(
    product: Product,
    provenance: Mapping[str, Any],
    scans: Sequence[SourceScan],
    *,
    variables: Sequence[str] | None,
    chunks: Mapping[str, int],
    fixes: AttrFixes,
) -> Delta:
    """Plan the update and refuse what cannot be done (nothing is written here)."""
    dim = str(provenance["concat_dim"])
    old_sources = {s["url"]: s for s in provenance.get("sources", [])}
    old_length = int(provenance.get("dims", {}).get(dim, 0))
    given = {s.ref.url for s in scans}
    options = scans[0].ref.storage_options if scans else {}
    missing = [u for u in old_sources if u not in given]
    extra_scans = []
    for url in missing:
        if url.startswith(DATASET_SCHEME):
            from arcodex.convert._memory_source import product_source

            extra_scans.append(product_source(product, old_sources[url], dim))
            continue
        try:
            extra_scans.append(scan_source(SourceRef(url, options if "://" in url else {}), dim))
        except ConversionError as exc:
            raise ConversionError(
                f"source {url} of the product cannot be read ({exc}); restore it, or convert the archive anew"
            ) from None
    all_scans = [*extra_scans, *scans]
    stored_vars = provenance.get("variables", {})
    wanted = list(stored_vars) if stored_vars else None
    if variables:
        wanted = sorted(set(wanted or []) | set(variables))
    params = provenance.get("parameters", {})
    plan = build_plan(
        all_scans,
        concat_dim=dim,
        variables=wanted,
        chunks=chunks,
        fixes=fixes,
        concat_units=provenance.get("concat_units"),
        grid=_grid(params, options),
        grid_coords=params.get("grid_coords"),
    )
    _same_time_encoding(plan, provenance)
    new_variables = {n for n in plan.variables if n not in stored_vars}
    for name, var in plan.variables.items():
        stored = stored_vars.get(name)
        if stored is None:
            continue
        if chunks and tuple(var.chunks) != tuple(stored["chunks"]):
            raise ConversionError(
                f"{name} is chunked {tuple(stored['chunks'])} in the product, not {tuple(var.chunks)}; "
                "drop --chunks or convert anew"
            )
        var.chunks = tuple(stored["chunks"])
        if var.dtype != stored["dtype"]:
            raise ConversionError(
                f"{name} is stored as {stored['dtype']} in the product but {var.dtype} in the sources; "
                "an update cannot change a dtype"
            )
        fixed = {d: n for d, n in zip(stored["dims"], stored["shape"], strict=True) if d != dim}
        for d, n in zip(var.dims, var.shape, strict=True):
            if d != dim and fixed.get(d, n) != n:
                raise ConversionError(
                    f"{name} has {n} {d} in the sources but {fixed[d]} in the product; "
                    f"only {dim} may grow"
                )
        if tuple(var.dims) != tuple(stored["dims"]):
            raise ConversionError(
                f"{name} has dims {var.dims} in the sources but {tuple(stored['dims'])} in the product"
            )
    delta = Delta(plan=plan, old_length=old_length, new_variables=new_variables)
    for source in plan.sources:
        old = old_sources.get(source.url)
        if old is None:
            if source.start < old_length:
                first = plan.sources[0].first
                where = (
                    "before the product's first step"
                    if source.first < first or source.start == 0
                    else "between the product's steps"
                )
                raise ConversionError(
                    f"{source.url.rsplit('/', 1)[-1]} starts at {source.first}, {where}; "
                    "updates only append after the last step — convert the archive anew to prepend or insert"
                )
            delta.appended.append(source)
            continue
        if old["start"] != source.start or old["length"] != source.length:
            raise ConversionError(
                f"{source.url.rsplit('/', 1)[-1]} now holds {source.length} steps from {source.first} "
                f"(the product has {old['length']} from {old.get('first')}); convert the archive anew"
            )
        if old["fingerprint"] != source.fingerprint:
            delta.changed.append(source)
    if new_variables and len(old_sources) and plan.sources[0].start != 0:
        raise ConversionError(
            f"new variables {', '.join(sorted(new_variables))} need sources covering the whole product"
        )
    for name in new_variables:
        if plan.variables[name].concat and not _covers(plan, old_length):
            raise ConversionError(
                f"new variable {name} needs sources covering all {old_length} steps of the product"
            )
    return delta


def _same_time_encoding(plan: Plan, provenance: Mapping[str, Any]) -> None:
    """Refuse an update that would encode the concat coordinate otherwise than the product
    does (its existing steps are not rewritten)."""
    from arcodex.convert._times import calendar_name

    units, calendar = provenance.get("concat_units"), provenance.get("calendar")
    if units is None or plan.concat_units is None:
        return
    if plan.concat_units != units or calendar_name(plan.calendar) != calendar_name(calendar):
        raise ConversionError(
            f"the product encodes {plan.concat_dim} in {units!r} ({calendar}), the update in "
            f"{plan.concat_units!r} ({plan.calendar}); an update cannot re-encode the existing "
            "steps: drop the units/calendar fix or convert the archive anew"
        )


def _covers(plan: Plan, length: int) -> bool:
    return bool(plan.sources) and plan.sources[0].start == 0 and plan.length >= length


def _grid(params: Mapping[str, Any], options: Mapping[str, Any]) -> SourceScan | None:
    if not params.get("grid"):
        return None
    return scan_source(
        SourceRef(params["grid"], options if "://" in params["grid"] else {}), "__none__"
    )


def apply(
    client: Any,
    product: Product,
    delta: Delta,
    uow: UnitOfWork | None,
    *,
    message: str | None,
    progress: Progress | None,
) -> tuple[int, str | None]:
    """Write the update; the bytes written and the new snapshot (Icechunk, not yet tagged)."""
    from arcodex.convert._commit import commit_message

    provenance = _provenance(product, delta)
    delta.plan.attrs[PROVENANCE_ATTR] = json.dumps(jsonable(provenance), sort_keys=True)
    if product.format == "zarr":
        return _apply_zarr(client, product, delta, uow, progress), None
    if product.format == "icechunk":
        return _apply_icechunk(
            client,
            product,
            delta,
            uow,
            message or commit_message("update", delta.plan),
            progress,
        )
    if product.format == "virtual-icechunk":
        return _apply_virtual_icechunk(
            client,
            product,
            delta,
            uow,
            message or commit_message("update", delta.plan),
            progress,
        )
    return _apply_references(client, product, delta, uow, progress)


def _provenance(product: Product, delta: Delta) -> dict[str, Any]:
    old = product.provenance()
    summary = delta.plan.summary()
    parameters = dict(old.get("parameters", {}))
    spec = parameters.get("spec")
    if isinstance(spec, dict) and isinstance(spec.get("sources"), list):
        # The spec the product is made again from names every source it now holds.
        urls = [
            IN_MEMORY if s.url.startswith(DATASET_SCHEME) else s.url for s in delta.plan.sources
        ]
        parameters["spec"] = {**spec, "sources": urls}
    return {**old, **summary, "parameters": parameters}


def _old_digests(delta: Delta) -> dict[str, Any] | None:
    """The chunk digests the product recorded before this update."""
    old: dict[str, Any] | None = json.loads(delta.plan.attrs[PROVENANCE_ATTR]).get("digests")
    return old


def _write_grid_tasks(delta: Delta, workers: int) -> list[list[Any]]:
    from arcodex.convert._write import group_tasks, plan_blocks

    plan = delta.plan
    blocks = []
    for start, stop in delta.waves():
        names = [n for n in plan.variables if n not in delta.new_variables]
        blocks.append(plan_blocks(plan, names, start, stop))
    if delta.new_variables:
        blocks.append(plan_blocks(plan, sorted(delta.new_variables)))
    return [group_tasks(wave, plan, workers) for wave in blocks]


def _resize(root: Any, delta: Delta) -> None:
    """Grow the concat dim of every array to the new length and write the new coordinate steps."""
    import numpy as np

    plan = delta.plan
    dim = plan.concat_dim
    for name, var in plan.variables.items():
        if name in delta.new_variables or not var.concat:
            continue
        arr = root[name]
        if tuple(arr.shape) != var.shape:
            arr.resize(var.shape)
    if dim in plan.variables:
        values = np.asarray(plan.concat_values)
        for start, stop in delta.waves():
            root[dim][start:stop] = values[start:stop]


def _add_variables(store: Any, delta: Delta, options: Any, group: str | None) -> None:
    import warnings

    from arcodex.convert._write import template

    if not delta.new_variables:
        return
    ds, encoding = template(delta.plan, options)
    keep = sorted(delta.new_variables)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)
        ds[keep].drop_vars(list(ds[keep].coords)).to_zarr(
            store,
            group=group,
            mode="a",
            compute=False,
            consolidated=False,
            encoding={k: encoding[k] for k in keep},
        )


def _set_attrs(root: Any, plan: Plan) -> None:
    root.attrs.put(jsonable(plan.attrs))
    for name, var in plan.variables.items():
        arr = root[name]
        current = dict(arr.attrs)
        wanted = jsonable(var.attrs)
        # Keep the encoded forms xarray wrote (fill value, dims); refresh the rest.
        for key in ("_FillValue", "_ARRAY_DIMENSIONS"):
            if key in current:
                wanted[key] = current[key]
        if wanted != current:
            arr.attrs.put(wanted)


def _options(product: Product) -> Any:
    from arcodex.convert._write import WriteOptions

    params = product.provenance().get("parameters", {}).get("write", {})
    return WriteOptions(
        zarr_format=int(params.get("zarr_format", 3)),  # type: ignore[arg-type]
        codec=params.get("codec", "blosc-zstd"),
        level=params.get("level"),
        shards=params.get("shards") or {},
    )


def _apply_zarr(
    client: Any, product: Product, delta: Delta, uow: UnitOfWork | None, progress: Progress | None
) -> int:
    import zarr

    from arcodex.convert._write import (
        ReadSpec,
        apply_shards,
        consolidate,
        fill_attrs,
        run_tasks,
        task_total,
        write_blocks,
    )
    from arcodex.convert._writers import _stage, _workers, record_digests

    options = _options(product)
    apply_shards(delta.plan, options)
    fill_attrs(delta.plan, options.zarr_format)
    store = product.target.zarr_store()
    backup = _Backup(product, delta)
    backup.save()
    _journal_backup(uow, product, backup)
    try:
        root = zarr.open_group(store, path=product.group or "", mode="r+", use_consolidated=False)
        _resize(root, delta)
        _add_variables(store, delta, options, product.group)
        written = 0
        digests: list[Any] = []
        spec = ReadSpec.of(delta.plan)
        for tasks in _write_grid_tasks(delta, _workers(client)):
            results = run_tasks(
                client,
                write_blocks,
                tasks,
                spec,
                product.target,
                product.group,
                progress=_stage(progress, "write"),
                total=task_total(tasks, delta.plan),
            )
            written += sum(int(n) for n, _ in results)
            digests.extend(d for _, items in results for d in items)
        root = zarr.open_group(store, path=product.group or "", mode="r+", use_consolidated=False)
        record_digests(root, delta.plan, digests, _old_digests(delta))
        _set_attrs(root, delta.plan)
        consolidate(store, options.zarr_format, product.group)
    except BaseException:
        backup.restore()
        raise
    backup.keep_until_done(uow)
    return written


def _apply_icechunk(
    client: Any,
    product: Product,
    delta: Delta,
    uow: UnitOfWork | None,
    message: str,
    progress: Progress | None,
) -> tuple[int, str]:
    import zarr

    from arcodex.convert._writers import _workers, fork_and_merge, record_digests

    options = _options(product)
    from arcodex.convert._write import apply_shards

    apply_shards(delta.plan, options)
    repo = product.repository()
    session = repo.writable_session(product.branch)
    root = zarr.open_group(
        session.store, path=product.group or "", mode="r+", use_consolidated=False
    )
    _resize(root, delta)
    _add_variables(session.store, delta, options, product.group)
    written = 0
    digests: list[Any] = []
    for tasks in _write_grid_tasks(delta, _workers(client)):
        n, items = fork_and_merge(client, session, delta.plan, tasks, product.group, progress)
        written += n
        digests.extend(items)
    root = zarr.open_group(
        session.store, path=product.group or "", mode="r+", use_consolidated=False
    )
    record_digests(root, delta.plan, digests, _old_digests(delta))
    _set_attrs(root, delta.plan)
    return written, _commit_undoably(repo, session, product, delta, uow, message)


def _apply_virtual_icechunk(
    client: Any,
    product: Product,
    delta: Delta,
    uow: UnitOfWork | None,
    message: str,
    progress: Progress | None,
) -> tuple[int, str]:
    from arcodex.convert._product import _quiet
    from arcodex.convert._writers import set_root_attrs, virtual_dataset, virtual_digests

    if delta.new_variables:
        raise ConversionError(
            "adding variables to a virtual product is not supported; convert the archive anew"
        )
    repo = product.repository()
    session = repo.writable_session(product.branch)
    plan = delta.plan
    index = {s.url: i for i, s in enumerate(plan.sources)}
    for source in delta.changed:
        i = index[source.url]
        part = virtual_dataset(client, plan, [i], progress)
        with _quiet():
            part.vz.to_icechunk(
                session.store,
                group=product.group,
                region={plan.concat_dim: slice(source.start, source.start + source.length)},
            )
    if delta.appended:
        indices = [index[s.url] for s in delta.appended]
        part = virtual_dataset(client, plan, indices, progress)
        static = [n for n, v in plan.variables.items() if not v.concat]
        with _quiet():
            part.drop_vars(static).vz.to_icechunk(
                session.store, group=product.group, append_dim=plan.concat_dim
            )
    virtual_digests(client, session.store, product.group, plan, _old_digests(delta), delta.waves())
    set_root_attrs(session.store, product.group, plan.attrs)
    return 0, _commit_undoably(repo, session, product, delta, uow, message)


def _commit_undoably(
    repo: Any,
    session: Any,
    product: Product,
    delta: Delta,
    uow: UnitOfWork | None,
    message: str,
) -> str:
    """Commit, and make the commit undoable until the update is kept (check, record)."""
    from arcodex.convert._writers import commit

    previous = str(repo.lookup_branch(product.branch))
    snapshot = commit(repo, session, message)
    args: dict[str, Any] = {
        "root": product.target.url,
        "branch": product.branch,
        "previous": previous,
        "snapshot": snapshot,
    }
    delta.undo = lambda: reset_branch(**args, repository=repo)
    if uow is not None:
        uow.on_rollback(f"reset {product.branch} to {previous}", delta.undo, snapshot=snapshot)
        uow.transition(
            "artifact_undo",
            url=product.target.url,
            **(
                {"recover": "arcodex.convert._update:reset_branch", "args": args}
                if product.target.is_local
                else {}
            ),
        )
    return snapshot


def reset_branch(
    root: str, branch: str, previous: str, snapshot: str, repository: Any = None
) -> None:
    """Move ``branch`` back to ``previous`` if it still points at ``snapshot``
    (also run by ``arcodex recover``)."""
    import contextlib

    import icechunk

    from arcodex.convert._product import _quiet

    with _quiet():
        repo = repository or icechunk.Repository.open(icechunk.local_filesystem_storage(root))
        with contextlib.suppress(icechunk.IcechunkError):
            repo.reset_branch(branch, previous, from_snapshot_id=snapshot)


def _apply_references(
    client: Any, product: Product, delta: Delta, uow: UnitOfWork | None, progress: Progress | None
) -> tuple[int, None]:
    from arcodex.convert._writers import digest_refs, virtual_dataset, write_references

    combined = virtual_dataset(client, delta.plan, list(range(len(delta.plan.sources))), progress)
    backup = _Backup(product, delta)
    backup.save(everything=True)
    _journal_backup(uow, product, backup)
    try:
        on_refs = digest_refs(client, delta.plan, product.group, _old_digests(delta), delta.waves())
        write_references(combined, product, on_refs=on_refs)
    except BaseException:
        backup.restore()
        raise
    backup.keep_until_done(uow)
    return 0, None


def _journal_backup(uow: UnitOfWork | None, product: Product, backup: _Backup) -> None:
    """Journal the backup, so that `arcodex recover` can restore it after a crash."""
    if uow is None:
        return
    uow.on_rollback(f"restore {product.target.url} as it was", backup.restore, url=backup.url)
    uow.transition(
        "artifact_backup",
        url=product.target.url,
        backup=backup.url,
        **(
            {"recover": "arcodex.convert._update:restore_backup", "args": backup.recovery()}
            if product.target.is_local
            else {}
        ),
    )


class _Backup:
    """Copies of what an update overwrites, beside the product, to put back on failure."""

    def __init__(self, product: Product, delta: Delta) -> None:
        self.product = product
        self.delta = delta
        self.fs, self.root = product.target.fs()
        self.url = f"{product.target.url}.arcodex-backup-{uuid.uuid4().hex[:12]}"
        self.path = f"{self.root}.arcodex-backup-{self.url.rsplit('-', 1)[-1]}"
        self.saved: list[str] = []
        self.everything = False

    def save(self, *, everything: bool = False) -> None:
        self.everything = everything
        if everything or not self.fs.isdir(self.root):
            self.fs.copy(self.root, self.path, recursive=self.fs.isdir(self.root))
            self.everything = True
            return
        for key in self._keys_to_save():
            src = f"{self.root}/{key}"
            if self.fs.exists(src):
                self.fs.makedirs(f"{self.path}/{key}".rsplit("/", 1)[0], exist_ok=True)
                self.fs.cp_file(src, f"{self.path}/{key}")
                self.saved.append(key)

    def _keys_to_save(self) -> list[str]:
        keys = [k for k in self._all_keys() if k.rsplit("/", 1)[-1] in _META]
        plan = self.delta.plan
        for name, var in plan.variables.items():
            if not var.concat or name in self.delta.new_variables:
                continue
            for start, stop in self.delta.waves():
                stop = min(stop, self.delta.old_length)
                if start >= stop and start != self.delta.old_length:
                    continue
                stop = max(stop, start + 1)
                keys.extend(_chunk_keys(self.product, name, var, plan.concat_dim, start, stop))
        return sorted(set(keys))

    def _all_keys(self) -> list[str]:
        prefix = self.root.rstrip("/") + "/"
        return [str(p)[len(prefix) :] for p in self.fs.find(self.root)]

    def restore(self) -> None:
        """Put the product back as it was before the update (idempotent)."""
        restore_backup(**self.recovery(), fs=self.fs)

    def recovery(self) -> dict[str, Any]:
        """What :func:`restore_backup` needs, as JSON (journaled for ``arcodex recover``)."""
        plan = self.delta.plan
        grids = {
            name: [var.dims.index(plan.concat_dim), var.write_grid[var.dims.index(plan.concat_dim)]]
            for name, var in plan.variables.items()
            if var.concat and name not in self.delta.new_variables
        }
        return {
            "root": self.root,
            "backup": self.path,
            "everything": self.everything,
            "old_length": self.delta.old_length,
            "new_variables": sorted(self.delta.new_variables),
            "grids": grids,
            "group": self.product.group,
        }

    def keep_until_done(self, uow: UnitOfWork | None) -> None:
        """Keep the backup until the update is kept (its check passed, its record written)."""
        self.delta.undo = self.restore
        self.delta.cleanup = self.discard
        if uow is not None:
            uow.after_commit(self.discard)

    def discard(self) -> None:
        if self.fs.exists(self.path):
            self.fs.rm(self.path, recursive=True)


_META = {"zarr.json", ".zarray", ".zattrs", ".zgroup", ".zmetadata"}


def restore_backup(
    root: str,
    backup: str,
    everything: bool,
    old_length: int,
    new_variables: Sequence[str],
    grids: Mapping[str, Sequence[int]],
    group: str | None = None,
    fs: Any = None,
) -> None:
    """Put a product back from its update backup (idempotent; also run by ``arcodex recover``).

    Removes the arrays of new variables and the chunks past the old extent,
    then copies the saved metadata and chunks back and drops the backup.
    """
    if fs is None:
        import fsspec

        fs = fsspec.filesystem("file")
    if not fs.exists(backup):
        return
    if everything:
        if fs.exists(root):
            fs.rm(root, recursive=True)
        fs.mv(backup, root, recursive=True)
        return
    base = f"{root}/{group}".rstrip("/") if group else root
    for name in new_variables:
        if fs.exists(f"{base}/{name}"):
            fs.rm(f"{base}/{name}", recursive=True)
    for name, (t, size) in grids.items():
        path = f"{base}/{name}"
        if not fs.exists(path):
            continue
        first_new = old_length // size
        for full in fs.find(path):
            index = _chunk_index(str(full)[len(path) + 1 :], t)
            if index is not None and index >= first_new:
                fs.rm(full)
    prefix = backup.rstrip("/") + "/"
    for full in fs.find(backup):
        key = str(full)[len(prefix) :]
        fs.makedirs(f"{root}/{key}".rsplit("/", 1)[0], exist_ok=True)
        fs.cp_file(full, f"{root}/{key}")
    fs.rm(backup, recursive=True)


def _chunk_keys(
    product: Product, name: str, var: Any, dim: str, start: int, stop: int
) -> list[str]:
    import itertools

    t = var.dims.index(dim)
    grid = var.write_grid
    ranges = []
    for i, (size, chunk) in enumerate(zip(var.shape, grid, strict=True)):
        if i == t:
            ranges.append(range(start // chunk, math.ceil(stop / chunk)))
        else:
            ranges.append(range(math.ceil(size / chunk)))
    prefix = f"{product.group}/{name}" if product.group else name
    fmt = product.provenance().get("parameters", {}).get("write", {}).get("zarr_format", 3)
    keys = []
    for combo in itertools.product(*ranges):
        if fmt == 3:
            keys.append(f"{prefix}/c/" + "/".join(str(c) for c in combo))
        else:
            keys.append(f"{prefix}/" + ".".join(str(c) for c in combo))
    return keys


def _chunk_index(key: str, t: int) -> int | None:
    if key in _META or key.rsplit("/", 1)[-1] in _META:
        return None
    parts = key.removeprefix("c/").split("/") if key.startswith("c/") else key.split(".")
    try:
        return int(parts[t])
    except (IndexError, ValueError):
        return None
