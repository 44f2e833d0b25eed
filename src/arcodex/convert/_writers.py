"""The three writers: Zarr store, Icechunk repository, virtual references."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from arcodex.convert._cluster import worker_count
from arcodex.convert._digest import (
    ChunkDigest,
    Digests,
    coordinate_digests,
    grids_of,
    record,
    record_sizes,
)
from arcodex.convert._plan import Plan
from arcodex.convert._product import PROVENANCE_ATTR, Product, _quiet
from arcodex.convert._source_digests import source_digests
from arcodex.convert._sources import SourceRef
from arcodex.convert._write import (
    ReadSpec,
    WriteOptions,
    consolidate,
    create_layout,
    group_tasks,
    plan_blocks,
    run_tasks,
    task_total,
    write_blocks,
    write_blocks_icechunk,
)
from arcodex.errors import ConversionError, ValidationError

__all__ = ["write_icechunk", "write_virtual", "write_zarr"]

Progress = Callable[[str, int, int], None]


_workers = worker_count


def _stage(progress: Progress | None, stage: str) -> Callable[[int, int], None] | None:
    if progress is None:
        return None
    return lambda done, total: progress(stage, done, total)


def write_zarr(
    client: Any, product: Product, plan: Plan, options: WriteOptions, progress: Progress | None
) -> int:
    """Write a new Zarr store; the bytes written."""
    import zarr

    store = product.target.zarr_store()
    create_layout(store, plan, options, group=product.group, mode="w-")
    tasks = group_tasks(plan_blocks(plan, plan.variables), plan, _workers(client))
    results = run_tasks(
        client,
        write_blocks,
        tasks,
        ReadSpec.of(plan),
        product.target,
        product.group,
        progress=_stage(progress, "write"),
        total=task_total(tasks, plan),
    )
    root = zarr.open_group(store, path=product.group or "", mode="r+", use_consolidated=False)
    record_digests(root, plan, [d for _, items in results for d in items])
    consolidate(store, options.zarr_format, product.group)
    return sum(int(n) for n, _ in results)


def record_digests(
    root: Any, plan: Plan, items: Sequence[ChunkDigest], old: Mapping[str, Any] | None = None
) -> Digests:
    """Keep the digests of every chunk of ``root``'s arrays in the product's provenance.

    ``items`` are the digests the tasks returned; ``old`` the manifest before an
    update (its digests stay for the chunks the update did not write). The
    concatenation coordinate, written on the client, is hashed here.
    """
    digests = Digests.from_dict(old)
    for name, grid in grids_of(root, plan.variables).items():
        digests.grid(name, grid)
    digests.add(items)
    if plan.concat_dim in plan.variables:
        digests.add(coordinate_digests(plan.concat_dim, plan.concat_values, root[plan.concat_dim]))
    record_sizes(root, digests)
    root.attrs[PROVENANCE_ATTR] = record(plan.attrs, PROVENANCE_ATTR, digests)
    return digests


def write_icechunk(
    client: Any,
    product: Product,
    plan: Plan,
    options: WriteOptions,
    message: str,
    progress: Progress | None,
) -> tuple[int, str]:
    """Create an Icechunk repository and commit the product once; the bytes and the snapshot."""
    import zarr

    repo = product.repository(create=True)
    session = repo.writable_session(product.branch) if product.branch == "main" else None
    if session is None:
        _branch(repo, product.branch)
        session = repo.writable_session(product.branch)
    create_layout(session.store, plan, options, group=product.group, mode="w-")
    tasks = group_tasks(plan_blocks(plan, plan.variables), plan, _workers(client))
    written, digests = fork_and_merge(client, session, plan, tasks, product.group, progress)
    root = zarr.open_group(
        session.store, path=product.group or "", mode="r+", use_consolidated=False
    )
    record_digests(root, plan, digests)
    return written, commit(repo, session, message)


def fork_and_merge(
    client: Any,
    session: Any,
    plan: Plan,
    tasks: Sequence[Sequence[Any]],
    group: str | None,
    progress: Progress | None,
) -> tuple[int, list[ChunkDigest]]:
    """Write blocks through forks of ``session`` on the workers and merge them back;
    the bytes written and the digests of the chunks written."""
    if not tasks:
        return 0, []
    fork = session.fork()
    results = run_tasks(
        client,
        write_blocks_icechunk,
        tasks,
        ReadSpec.of(plan),
        fork,
        group,
        progress=_stage(progress, "write"),
        total=task_total(tasks, plan),
    )
    session.merge(*[fork for _, fork, _ in results])
    return sum(n for n, _, _ in results), [d for _, _, items in results for d in items]


def commit(repo: Any, session: Any, message: str) -> str:
    """Commit the session; the snapshot id. Tags come once the product is kept."""
    import icechunk

    try:
        return str(session.commit(message))
    except icechunk.ConflictError as exc:
        raise ConversionError(
            f"someone else committed to the repository meanwhile; run the update again ({exc})"
        ) from exc


def tag_snapshot(product: Product, tag: str, snapshot: str) -> None:
    """Tag a kept snapshot (Icechunk never reuses a tag name, even a deleted one)."""
    import icechunk

    try:
        product.repository().create_tag(tag, snapshot)
    except icechunk.IcechunkError as exc:
        raise ConversionError(f"cannot tag {snapshot} {tag!r}: {exc}") from exc


def check_tag_free(product: Product, tag: str | None) -> None:
    """Refuse a tag the repository already has (or had), before anything is written."""
    if not tag or "icechunk" not in product.format or not product.target.exists():
        return
    import icechunk

    try:
        taken = tag in set(product.repository().list_tags())
    except icechunk.IcechunkError:
        return
    if taken:
        raise ValidationError(f"the repository already has a tag {tag!r}; choose another --tag")


def _branch(repo: Any, branch: str) -> None:
    import icechunk

    try:
        repo.lookup_branch(branch)
    except icechunk.IcechunkError:
        main = repo.lookup_branch("main")
        repo.create_branch(branch, main)


# -- virtual ------------------------------------------------------------------------------


def open_virtual(ref: SourceRef, loadable: Sequence[str] | None) -> Any:
    """Task: one source as a virtual dataset (references to its chunks).

    ``loadable`` variables are read into memory; None loads the dimension coordinates.
    """
    from obspec_utils.registry import ObjectStoreRegistry
    from virtualizarr import open_virtual_dataset
    from virtualizarr.parsers import HDFParser

    parser: Any = HDFParser()
    if ref.is_local:
        from obstore.store import LocalStore

        from arcodex.convert._sources import hdf5_magic

        if not hdf5_magic(ref.url):
            from virtualizarr.parsers.netcdf3 import NetCDF3Parser

            parser = NetCDF3Parser()
        registry = ObjectStoreRegistry({"file://": LocalStore()})
        url = Path(ref.url).as_uri()
    else:
        registry = ObjectStoreRegistry({_bucket(ref.url): _object_store(ref)})
        url = ref.url
    try:
        return open_virtual_dataset(
            url,
            registry=registry,
            parser=parser,
            loadable_variables=None if loadable is None else list(loadable),
            decode_times=False,
        )
    except Exception as exc:
        raise ConversionError(f"cannot make references to {ref.url}: {exc}") from exc


def scan_virtual(ref: SourceRef, concat_dim: str | None) -> tuple[Any, Any]:
    """Task: scan one source and make its virtual dataset.

    The scan is the one every other target and ``check`` make (raw attributes and
    values as stored), so that the product is planned and checked from the same facts.
    """
    from arcodex.convert._sources import scan_source

    if ref.in_memory:
        raise ValidationError(
            "a virtual product cannot reference an in-memory dataset; use to='zarr' or 'icechunk'"
        )
    return scan_source(ref, concat_dim), open_virtual(ref, None)


def scan_batch(refs: Sequence[SourceRef], concat_dim: str | None, virtual: bool) -> list[Any]:
    """Task: scan several sources (with their virtual datasets for virtual targets)."""
    from arcodex.convert._sources import scan_source

    if virtual:
        return [scan_virtual(ref, concat_dim) for ref in refs]
    return [scan_source(ref, concat_dim) for ref in refs]


def _bucket(url: str) -> str:
    protocol, rest = url.split("://", 1)
    return f"{protocol}://{rest.split('/', 1)[0]}"


def _object_store(ref: SourceRef) -> Any:
    from obstore.store import S3Store

    from arcodex.convert._target import s3_settings

    settings = s3_settings(ref.storage_options)
    bucket = ref.url.split("://", 1)[1].split("/", 1)[0]
    config: dict[str, Any] = {}
    if settings.get("endpoint_url"):
        config["endpoint"] = settings["endpoint_url"]
        config["allow_http"] = bool(settings.get("allow_http"))
        config["virtual_hosted_style_request"] = False
    if settings.get("region"):
        config["region"] = settings["region"]
    if settings.get("anonymous"):
        config["skip_signature"] = True
    elif settings.get("access_key_id"):
        config["access_key_id"] = settings["access_key_id"]
        config["secret_access_key"] = settings["secret_access_key"]
        if settings.get("session_token"):
            config["session_token"] = settings["session_token"]
    return S3Store(bucket, **config)


def open_parts(
    client: Any, plan: Plan, indices: Sequence[int], progress: Progress | None
) -> list[Any]:
    """The virtual datasets of the sources ``indices`` of ``plan`` (kept in ``plan.virtual_parts``)."""
    from distributed import as_completed

    loadable = [n for n, v in plan.variables.items() if n in plan.dims or v.grid]
    loadable = [n for n in loadable if n in plan.scans[0].variables]
    refs = [plan.refs[i] for i in indices]
    parts: list[Any] = [plan.virtual_parts.get(r.url) for r in refs]
    missing = [r for r, p in zip(refs, parts, strict=True) if p is None]
    futures = client.map(open_virtual, missing, loadable=loadable, pure=False)
    where = {f.key: refs.index(r) for f, r in zip(futures, missing, strict=True)}
    for done, future in enumerate(as_completed(futures, loop=client.loop), start=1):
        parts[where[future.key]] = future.result()
        plan.virtual_parts[refs[where[future.key]].url] = parts[where[future.key]]
        if progress:
            progress("references", done, len(missing))
    return parts


def virtual_dataset(
    client: Any, plan: Plan, indices: Sequence[int], progress: Progress | None
) -> Any:
    """The virtual dataset of the sources ``indices`` of ``plan``, concatenated in order."""
    import numpy as np
    import xarray as xr

    from arcodex.convert._concat_grid import regrid

    parts = open_parts(client, plan, indices, progress)
    dim = plan.concat_dim
    keep = list(plan.variables)
    parts = [
        regrid(p.drop_vars([v for v in p.variables if v not in keep]), dim, plan.virtual_chunks)
        for p in parts
    ]
    try:
        with _quiet():
            combined = xr.concat(
                parts,
                dim=dim,
                data_vars="minimal",
                coords="minimal",
                compat="override",
                join="exact",
                combine_attrs="override",
            )
    except (ValueError, NotImplementedError) as exc:
        # The plan refuses what it foresees; whatever else VirtualiZarr cannot join lands here.
        text = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise ConversionError(
            f"virtual references cannot join the sources: {text}; "
            "convert the archive with --to zarr or --to icechunk"
        ) from exc
    lo = plan.sources[indices[0]].start
    hi = plan.sources[indices[-1]].start + plan.sources[indices[-1]].length
    if dim in plan.variables:
        values = np.asarray(plan.concat_values)[lo:hi]
        combined[dim] = xr.Variable((dim,), values, attrs=dict(plan.variables[dim].attrs))
        combined[dim].encoding = {"_FillValue": None, "chunks": plan.variables[dim].chunks}
    for name, var in plan.variables.items():
        if name not in combined.variables:
            continue
        if var.recode is not None and any(var.recode.needed(i) for i in indices):
            # Time bounds in other units than the product's: their values, re-encoded.
            combined[name] = xr.Variable(
                var.dims, _stored_values(plan, name, lo, hi), attrs=var.attrs
            )
            combined[name].encoding = {"chunks": var.chunks}
            if "_FillValue" not in var.attrs:
                combined[name].encoding["_FillValue"] = None
            continue
        if var.grid is not None:
            from arcodex.convert._sources import open_raw

            assert plan.grid is not None
            raw = open_raw(plan.grid).read(var.grid, ())
            combined[name] = xr.Variable(var.dims, raw.reshape(var.shape), attrs=dict(var.attrs))
            continue
        if name != dim and not hasattr(combined[name].data, "manifest"):
            # Loaded coordinates: VirtualiZarr decoded them (mask, scale); write their
            # values as stored, with their attributes as they are, as the Zarr writer does.
            raw = _stored_values(plan, name, lo, hi)
            combined[name] = xr.Variable(var.dims, raw, attrs=dict(var.attrs))
            combined[name].encoding = {"chunks": var.chunks}
            if "_FillValue" not in var.attrs:
                combined[name].encoding["_FillValue"] = None
            continue
        attrs = dict(var.attrs)
        if "_FillValue" in combined[name].attrs:
            # Virtual arrays carry the fill value already encoded for their Zarr format.
            attrs["_FillValue"] = combined[name].attrs["_FillValue"]
        combined[name].attrs = attrs
    combined.attrs = dict(plan.attrs)
    return combined


def _stored_values(plan: Plan, name: str, lo: int, hi: int) -> Any:
    """The values of ``name`` (over concat ``[lo, hi)`` if along it) as the product stores
    them: as the sources do, time values re-encoded with the product's units."""
    from arcodex.convert._write import read_block

    var = plan.variables[name]
    region = tuple(
        slice(lo, hi) if d == plan.concat_dim else slice(0, n)
        for d, n in zip(var.dims, var.shape, strict=True)
    )
    return read_block(plan.block(name, region), ReadSpec.of(plan))


def write_virtual(
    client: Any,
    product: Product,
    plan: Plan,
    message: str,
    progress: Progress | None,
) -> tuple[int, str | None]:
    """Write references to the sources' chunks (Icechunk or kerchunk); nothing is copied."""
    combined = virtual_dataset(client, plan, list(range(len(plan.sources))), progress)
    if product.format == "virtual-icechunk":
        repo = product.repository(create=True, config=container_config(product))
        if product.branch != "main":
            _branch(repo, product.branch)
        session = repo.writable_session(product.branch)
        with _quiet():
            combined.vz.to_icechunk(session.store, group=product.group)
        virtual_digests(client, session.store, product.group, plan)
        set_root_attrs(session.store, product.group, plan.attrs)
        return 0, commit(repo, session, message)
    write_references(combined, product, on_refs=digest_refs(client, plan, product.group))
    return 0, None


def digest_refs(
    client: Any,
    plan: Plan,
    group: str | None,
    old: Mapping[str, Any] | None = None,
    ranges: Sequence[tuple[int, int]] | None = None,
) -> Callable[[dict[str, Any]], None]:
    """What ``write_references`` runs on the references: hash their chunks, keep the digests."""

    def run(refs: dict[str, Any]) -> None:
        virtual_digests(client, refs_store(refs), group, plan, old, ranges)
        _set_refs_attrs(refs, group, plan.attrs)

    return run


def virtual_digests(
    client: Any,
    store: Any,
    group: str | None,
    plan: Plan,
    old: Mapping[str, Any] | None = None,
    ranges: Sequence[tuple[int, int]] | None = None,
) -> Digests:
    """Hash the chunks of a virtual product from its sources, decoded (into ``plan.attrs``).

    ``ranges``: only chunks over these concat ranges (an update; ``old`` keeps the rest).
    """
    import zarr

    with _quiet():
        root: Any = zarr.open_group(store, path=group or "", mode="r", use_consolidated=False)
    names = [n for n in plan.variables if n in root]
    digests = Digests.from_dict(old)
    for name, grid in grids_of(root, names).items():
        digests.grid(name, grid)
    items: list[ChunkDigest] = []
    spans: Sequence[tuple[int, int | None]] = ranges if ranges is not None else [(0, None)]
    for start, stop in spans:
        items.extend(source_digests(client, plan, root, names, start, stop))
    digests.add(items)
    record(plan.attrs, PROVENANCE_ATTR, digests)
    return digests


def refs_store(refs: Mapping[str, Any]) -> Any:
    """A Zarr store of the metadata of kerchunk references (to read their chunk grids)."""
    import json

    import zarr.storage
    from zarr.core.buffer import default_buffer_prototype

    store = refs.get("refs", refs)
    meta: dict[str, Any] = {}
    for key, value in store.items():
        if key.rsplit("/", 1)[-1] in (".zarray", ".zattrs", ".zgroup"):
            text = value if isinstance(value, str | bytes) else json.dumps(value)
            raw = text.encode() if isinstance(text, str) else text
            meta[key] = default_buffer_prototype().buffer.from_bytes(raw)
    return zarr.storage.MemoryStore(meta)


def set_root_attrs(store: Any, group: str | None, attrs: dict[str, Any]) -> None:
    """Make the root group's attributes exactly ``attrs`` (writers add their own)."""
    import zarr

    from arcodex.convert._plan import jsonable

    root = zarr.open_group(store, path=group or "", mode="r+", use_consolidated=False)
    root.attrs.put(jsonable(attrs))


def container_config(product: Product) -> Any:
    import icechunk

    from arcodex.convert._target import s3_settings

    config = icechunk.RepositoryConfig.default()
    for prefix in product.containers:
        store: Any
        if prefix.startswith("file://"):
            store = icechunk.local_filesystem_store(
                prefix.removeprefix("file://").rstrip("/") or "/"
            )
        elif prefix.startswith("s3://"):
            settings = s3_settings(product.source_options)
            store = icechunk.s3_store(
                region=settings.get("region"),
                endpoint_url=settings.get("endpoint_url"),
                allow_http=bool(settings.get("allow_http")),
                force_path_style=bool(settings.get("force_path_style")),
                s3_compatible=bool(settings.get("endpoint_url")),
            )
        else:
            raise ConversionError(
                f"virtual references to {prefix} are not supported; use local or s3 sources"
            )
        config.set_virtual_chunk_container(icechunk.VirtualChunkContainer(prefix, store))
    return config


def _no_fill_where_sources_have_none(refs: dict[str, Any], combined: Any) -> None:
    """Zarr 2 metadata without a fill value for variables whose sources declare none.

    HDF5 always has a fill value (netCDF's default); written into ``.zarray`` it
    would surface as a ``_FillValue`` attribute the sources never had.
    """
    import json

    store = refs.get("refs", refs)
    for name, var in combined.variables.items():
        key = f"{name}/.zarray"
        if "_FillValue" in var.attrs or key not in store:
            continue
        meta = store[key]
        data = json.loads(meta) if isinstance(meta, str | bytes) else dict(meta)
        if data.get("fill_value") is not None:
            data["fill_value"] = None
            store[key] = json.dumps(data)


def write_references(
    combined: Any, product: Product, on_refs: Callable[[dict[str, Any]], Any] | None = None
) -> None:
    """Kerchunk references, written beside the target then moved into place.

    ``on_refs(refs)`` runs before they are written (the chunk digests are made then).
    """
    target = product.target
    fmt = "json" if product.format == "kerchunk" else "parquet"
    with tempfile.TemporaryDirectory(prefix="arcodex-refs-") as tmp:
        local = os.path.join(tmp, "refs.json" if fmt == "json" else "refs.parq")
        with _quiet():
            refs = combined.vz.to_kerchunk(format="dict")
        _no_fill_where_sources_have_none(refs, combined)
        if on_refs is not None:
            on_refs(refs)
        if fmt == "json":
            import ujson

            with open(local, "w", encoding="utf-8") as fh:
                ujson.dump(refs, fh)
        else:
            from kerchunk.df import refs_to_dataframe

            refs_to_dataframe(refs, url=local)
        if target.is_local:
            dest = Path(target.url)
            dest.parent.mkdir(parents=True, exist_ok=True)
            staging = dest.with_name(f".{dest.name}.arcodex-tmp")
            if staging.exists():
                import shutil

                shutil.rmtree(staging) if staging.is_dir() else staging.unlink()
            os.replace(local, staging)
            if dest.is_dir():
                import shutil

                shutil.rmtree(dest)
            os.replace(staging, dest)
        else:
            fs, path = target.fs()
            fs.put(local, path, recursive=fmt == "parquet")


def _set_refs_attrs(refs: dict[str, Any], group: str | None, attrs: Mapping[str, Any]) -> None:
    import json

    from arcodex.convert._plan import jsonable

    store = refs.get("refs", refs)
    key = f"{group}/.zattrs" if group else ".zattrs"
    store[key] = json.dumps(jsonable(dict(attrs)))
