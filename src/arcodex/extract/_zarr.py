"""Zarr stores (v2 and v3) and Icechunk repositories: structure, and extents via xarray."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

from arcodex.errors import PluginError, ValidationError
from arcodex.extract._base import Extracted
from arcodex.extract._datacube import DATACUBE, datacube_or_none

__all__ = ["IcechunkExtractor", "ZarrExtractor"]

_MAX_ARRAYS = 2000


def is_zarr(path: Path) -> bool:
    return path.is_dir() and any((path / f).exists() for f in ("zarr.json", ".zgroup", ".zarray"))


def is_icechunk(path: Path) -> bool:
    return path.is_dir() and (path / "repo").exists() and (path / "snapshots").is_dir()


def _need(module: str, extra: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise PluginError(
            f"reading this needs {module}; install it with pip install 'arcodex[{extra}]'"
        )


class ZarrExtractor:
    """Groups, arrays (shape, chunks, shards, dtype, codecs, attributes), consolidation."""

    name = "zarr"

    def matches(self, path: Path) -> bool:
        return is_zarr(path)

    def extract(self, path: Path, into: Extracted) -> None:
        _need("zarr", "zarr")
        import zarr

        try:
            info = _describe_zarr(zarr.open(str(path), mode="r"))
            info["consolidated"] = _consolidated(path)
        except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError) as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise ValidationError(
                f"cannot read {path} as Zarr: {reason}; check the store or add it with --no-extract"
            ) from exc
        into.metadata["zarr"] = info
        into.metadata.update(_extents(path, engine="zarr"))
        into.kind, into.format, into.media_type = "dataset", "zarr", "application/vnd+zarr"


class IcechunkExtractor:
    """Branches, tags and the latest snapshot of an Icechunk repository, and its arrays."""

    name = "icechunk"

    def matches(self, path: Path) -> bool:
        return is_icechunk(path)

    def extract(self, path: Path, into: Extracted) -> None:
        _need("icechunk", "zarr")
        import icechunk
        import zarr

        try:
            repo = icechunk.Repository.open(icechunk.local_filesystem_storage(str(path)))
            branches = sorted(repo.list_branches())
            latest = next(iter(repo.ancestry(branch="main")), None) if "main" in branches else None
            info: dict[str, Any] = {
                "branches": branches,
                "tags": sorted(repo.list_tags()),
            }
            if latest is not None:
                info["latest_snapshot"] = {
                    "id": latest.id,
                    "message": latest.message,
                    "written_at": latest.written_at.isoformat(),
                }
                session = repo.readonly_session("main")
                info.update(_describe_zarr(zarr.open(session.store, mode="r")))
                into.metadata.update(_extents(session.store, engine="zarr"))
        except Exception as exc:  # icechunk raises its own error types
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise ValidationError(
                f"cannot read {path} as an Icechunk repository: {reason}; check it or add it with --no-extract"
            ) from exc
        into.metadata["icechunk"] = info
        into.kind, into.format, into.media_type = "dataset", "icechunk", "application/x-icechunk"


def _describe_zarr(node: Any) -> dict[str, Any]:
    import zarr

    from arcodex.extract._attrs import clean_attrs, metadata_key

    arrays: dict[str, Any] = {}
    groups: list[str] = []
    if isinstance(node, zarr.Array):
        members: list[tuple[str, Any]] = [("", node)]
        fmt = node.metadata.zarr_format
        attrs = {}
    else:
        members = list(node.members(max_depth=None))
        fmt = node.metadata.zarr_format
        attrs = clean_attrs(dict(node.attrs))
    for name, member in members:
        if isinstance(member, zarr.Array):
            if len(arrays) < _MAX_ARRAYS:
                arrays[metadata_key(name) or "/"] = {
                    "shape": list(member.shape),
                    "chunks": list(member.chunks),
                    "shards": list(member.shards) if member.shards else None,
                    "dtype": str(member.dtype),
                    "codecs": _codecs(member),
                    "attrs": clean_attrs(dict(member.attrs)),
                }
        else:
            groups.append(name)
    return {"zarr_format": fmt, "attrs": attrs, "groups": sorted(groups), "arrays": arrays}


def _codecs(array: Any) -> list[str]:
    names = []
    for codec in (*array.filters, array.serializer, *array.compressors):
        if codec is None:
            continue
        to_dict = getattr(codec, "to_dict", None)
        name = to_dict().get("name") if callable(to_dict) else getattr(codec, "codec_id", None)
        names.append(str(name or type(codec).__name__))
    return names


def _consolidated(path: Path) -> bool:
    if (path / ".zmetadata").exists():
        return True
    meta = path / "zarr.json"
    return meta.exists() and json.loads(meta.read_text()).get("consolidated_metadata") is not None


def _extents(path: Path | Any, engine: str) -> dict[str, Any]:
    """bbox, time coverage and datacube through xarray, when it is installed (else nothing).

    ``path`` is a directory, or a Zarr store (an Icechunk session's)."""
    if importlib.util.find_spec("xarray") is None:
        return {}
    import warnings

    import xarray as xr

    from arcodex.extract._netcdf import _bbox, _time_coverage

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            where = str(path) if isinstance(path, Path) else path
            ds = xr.open_dataset(where, engine=engine, decode_times=False, chunks=None)
        top: dict[str, Any] = {}
        with ds:
            bbox = _bbox(ds)
            if bbox is not None:
                top["bbox"] = bbox
            coverage = _time_coverage(ds)
            if coverage is not None:
                top["start_datetime"], top["end_datetime"] = coverage[0], coverage[1]
            cube = datacube_or_none(ds)
            if cube is not None:
                top[DATACUBE] = cube
        return top
    except Exception:  # a store xarray cannot read as a dataset still has its structure
        return {}
