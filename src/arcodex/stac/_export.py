"""Static STAC: a self-contained catalog (relative links) of every dataset record.

Re-running writes only the documents whose content changed and removes the
ones of records that are gone (the export keeps a manifest of what it
wrote). ``check`` builds the catalog in memory and reports whether the
published one is stale or invalid, without writing anything — for CI.
"""

from __future__ import annotations

import json
import os
import posixpath
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from arcodex.errors import StorageError, ValidationError
from arcodex.stac._build import stac_for, version_items
from arcodex.stac._groups import Grouping, group_collection
from arcodex.stac._schemas import catalog_schema_cache
from arcodex.stac._validate import Report, load_profile, validate_stac

if TYPE_CHECKING:
    from arcodex.catalog import Catalog

__all__ = ["ExportResult", "build_documents", "export_stac"]

MANIFEST = ".arcodex-stac.json"
_GEOJSON = "application/geo+json"


@dataclass
class ExportResult:
    """What an export wrote, or (with ``check``) would write."""

    dest: str
    written: list[str] = field(default_factory=list)
    unchanged: int = 0
    removed: list[str] = field(default_factory=list)
    report: Report = field(default_factory=Report)
    checked_only: bool = False

    @property
    def stale(self) -> bool:
        return bool(self.written or self.removed)

    @property
    def ok(self) -> bool:
        return self.report.valid and not (self.checked_only and self.stale)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dest": self.dest,
            "written": self.written,
            "unchanged": self.unchanged,
            "removed": self.removed,
            "stale": self.stale,
            "valid": self.report.valid,
            "problems": [p.to_dict() for p in self.report.problems],
            "notices": [n.to_dict() for n in self.report.notices],
            "checked_only": self.checked_only,
        }


def build_documents(
    catalog: Catalog, *, title: str | None = None, open_data: bool = True
) -> dict[str, dict[str, Any]]:
    """Every document of the static catalog by relative path (``catalog.json`` first)."""
    import pystac

    root = pystac.Catalog(
        id="arcodex",
        title=title or f"arcodex catalog {catalog.root.name}",
        description=f"Datasets of the arcodex catalog {catalog.root.name}",
    )
    grouping = Grouping(catalog)
    grouped: dict[str, list[pystac.Item]] = {}
    members: dict[str, list[Any]] = {}
    for record in _datasets(catalog):
        collection, item = stac_for(record, catalog, open_data=open_data)
        versions = version_items(record, item, catalog)
        for version in versions:
            version.add_link(pystac.Link("latest-version", item, media_type=_GEOJSON))
        if versions:
            item.add_link(pystac.Link("predecessor-version", versions[0], media_type=_GEOJSON))
        group = grouping.collection_id(record) if grouping else record.id
        if group == record.id:
            for version in versions:
                collection.add_item(version)
            root.add_child(collection)
        else:
            item.remove_links("collection")
            item.remove_links("parent")
            grouped.setdefault(group, []).extend([item, *versions])
            members.setdefault(group, []).append(record)
    for group_id, items in grouped.items():
        collection = group_collection(
            grouping.groups[group_id], members[group_id], catalog.config.stac_defaults
        )
        collection.add_items(items)
        root.add_child(collection)
    base = "/arcodex-stac"  # a placeholder root: every link ends up relative to it
    root.normalize_hrefs(base, skip_unresolved=True)
    docs: dict[str, dict[str, Any]] = {}
    for obj in [root, *root.get_all_collections(), *root.get_items(recursive=True)]:
        href = obj.get_self_href()
        assert href is not None
        rel = posixpath.relpath(href, base)
        data = obj.to_dict(include_self_link=False, transform_hrefs=True)
        data["links"] = [_relative(link, href, base) for link in data.get("links", [])]
        docs[rel] = data
    return docs


def _relative(link: Mapping[str, Any], self_href: str, base: str) -> dict[str, Any]:
    out = dict(link)
    target = str(out.get("href", ""))
    if target.startswith(base + "/") or target == base:
        out["href"] = posixpath.relpath(target, posixpath.dirname(self_href))
        if not out["href"].startswith("."):
            out["href"] = "./" + out["href"]
    return out


def _datasets(catalog: Catalog) -> Iterator[Any]:
    cursor = None
    while True:
        page = catalog.search(kind="dataset", limit=500, cursor=cursor)
        yield from page.records
        cursor = page.next_cursor
        if not cursor:
            return


def export_stac(
    catalog: Catalog,
    dest: str | os.PathLike[str],
    *,
    storage_options: Mapping[str, Any] | None = None,
    check: bool = False,
    title: str | None = None,
    profile_path: str | None = None,
) -> ExportResult:
    """Write (or, with ``check``, compare) the static catalog at ``dest`` (path or URL)."""
    import fsspec

    docs = build_documents(catalog, title=title)
    report = validate_stac(
        list(docs.values()),
        profile=load_profile(profile_path),
        schema_cache=catalog_schema_cache(catalog),
    )
    fs, root = fsspec.core.url_to_fs(os.fspath(dest), **dict(storage_options or {}))
    result = ExportResult(dest=os.fspath(dest), report=report, checked_only=check)
    if not report.valid and not check:
        first = report.problems[0]
        raise ValidationError(
            f"the STAC is invalid ({len(report.problems)} problems; first: {first.id} "
            f"{first.path}: {first.message}); run `arcodex stac validate` for all of them"
        )
    previous = _manifest(fs, root)
    try:
        for rel, data in docs.items():
            text = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
            path = posixpath.join(root, rel)
            if fs.exists(path) and fs.cat_file(path).decode("utf-8") == text:
                result.unchanged += 1
                continue
            result.written.append(rel)
            if not check:
                fs.makedirs(posixpath.dirname(path), exist_ok=True)
                fs.pipe_file(path, text.encode("utf-8"))
        for rel in sorted(set(previous) - set(docs)):
            result.removed.append(rel)
            if not check:
                path = posixpath.join(root, rel)
                if fs.exists(path):
                    fs.rm(path)
        if not check:
            fs.pipe_file(posixpath.join(root, MANIFEST), json.dumps(sorted(docs)).encode())
    except OSError as exc:
        raise StorageError(f"cannot write the STAC catalog at {dest}: {exc}") from exc
    return result


def _manifest(fs: Any, root: str) -> list[str]:
    path = posixpath.join(root, MANIFEST)
    try:
        if fs.exists(path):
            data = json.loads(fs.cat_file(path))
            return [str(p) for p in data] if isinstance(data, list) else []
    except (OSError, ValueError):
        return []
    return []
