"""STAC documents of records, built once per record version and linked per request.

The server builds a Collection and Item (:func:`arcodex.stac.stac_for`) from
the record's metadata only, never opening its data: what a dataset holds was
read when its record was written, and answering a request must make no
outbound request (an external URI could be anywhere, slow or hostile). The
datacube and the tagged versions of an Icechunk product (each with its own
datacube) are stored in the record when it is written; for a record of an
older arcodex, versions are listed from its repository only when that is a
local directory. Documents are kept in memory per
``(record id, record version)``, so a record that changes is rebuilt. Links
depend on the request (its base URL), so they are added to a copy on the way out.
"""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from arcodex.catalog import Catalog
    from arcodex.model import Condition, Record

__all__ = ["DEFAULT_FIELDS", "DocumentCache", "apply_fields", "scrub"]

QUERYABLES_REL = "http://www.opengis.net/def/rel/ogc/1.0/queryables"
_JSON = "application/json"
_GEOJSON = "application/geo+json"
#: Keys whose values are never sent, wherever they appear (storage options, attributes).
_SECRET_KEYS = frozenset(
    {
        "key",
        "secret",
        "token",
        "password",
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
        "session_token",
        "secret_access_key",
        "access_key_id",
        "credentials",
    }
)


class DocumentCache:
    """Collection and Item dicts per (record id, version), least recently used dropped first."""

    def __init__(self, catalog: Catalog, *, open_data: bool = False, size: int = 1024) -> None:
        self.catalog = catalog
        self.open_data = open_data
        self.size = size
        self._docs: OrderedDict[tuple[str, int], tuple[dict[str, Any], dict[str, Any]]] = (
            OrderedDict()
        )
        self._versions: dict[tuple[str, int], list[dict[str, Any]]] = {}
        self._collection_of: dict[tuple[str, int], str] = {}
        self._groups: OrderedDict[
            tuple[str, tuple[str, ...]], tuple[tuple[int, str], dict[str, Any]]
        ] = OrderedDict()
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Forget every document and read the groups again (the configuration changed)."""
        from arcodex.stac._groups import Grouping

        grouping = Grouping(self.catalog)
        with self._lock:
            self.grouping = grouping
            self._docs.clear()
            self._versions.clear()
            self._collection_of.clear()
            self._groups.clear()

    def collection_of(self, record: Record) -> str:
        """The id of the Collection holding the record's Items (a group's, or its own)."""
        if not self.grouping:
            return record.id
        key = (record.id, record.version)
        found = self._collection_of.get(key)
        if found is None:
            found = self._collection_of[key] = self.grouping.collection_id(record)
        return found

    def group(self, group_id: str, base_url: str, visible: Sequence[Condition]) -> dict[str, Any]:
        """The Collection of a configured group made of the members matching ``visible``
        (the records the asker may see), its extent kept until one of them changes.

        A member the asker may not see must not widen what it is told (extent, cube,
        keywords), so a Collection is kept per group and per ``visible``.
        """
        from arcodex.model import Condition, Query, SortKey
        from arcodex.stac._groups import group_collection

        conditions = [
            Condition(field="kind", value="dataset"),
            *visible,
            *self.grouping.conditions(group_id),
        ]
        newest = self.catalog.search(
            Query(
                conditions=conditions, sort=[SortKey(field="updated_at", descending=True)], limit=1
            )
        ).records
        signature = (
            self.catalog.count(Query(conditions=conditions, limit=None)),
            newest[0].updated_at.isoformat() if newest else "",
        )
        key = (group_id, tuple(c.model_dump_json() for c in visible))
        with self._lock:
            cached = self._groups.get(key)
            if cached is not None:
                self._groups.move_to_end(key)
        if cached is None or cached[0] != signature:
            members = list(self.grouping.members(group_id, visible))
            collection = group_collection(
                self.grouping.groups[group_id], members, self.catalog.config.stac_defaults
            )
            cached = (signature, _unlinked(collection.to_dict))
            with self._lock:
                self._groups[key] = cached
                self._groups.move_to_end(key)
                while len(self._groups) > self.size:  # one per group and set of projects
                    self._groups.popitem(last=False)
        return _linked_collection(copy.deepcopy(cached[1]), group_id, base_url)

    def documents(self, record: Record) -> tuple[dict[str, Any], dict[str, Any]]:
        """The unlinked Collection and Item of a record (shared: copy before changing)."""
        key = (record.id, record.version)
        with self._lock:
            found = self._docs.get(key)
            if found is not None:
                self._docs.move_to_end(key)
                return found
        from arcodex.stac import stac_for

        collection, item = stac_for(record, self.catalog, open_data=self.open_data)
        docs = (_unlinked(collection.to_dict), _unlinked(item.to_dict))
        with self._lock:
            self._docs[key] = docs
            self._docs.move_to_end(key)
            while len(self._docs) > self.size:
                self._docs.popitem(last=False)
        return docs

    def versions(self, record: Record) -> list[dict[str, Any]]:
        """The unlinked Items of the record's tagged versions (Icechunk), newest first."""
        if not self._versioned(record):
            return []
        key = (record.id, record.version)
        with self._lock:
            found = self._versions.get(key)
        if found is not None:
            return found
        import pystac

        from arcodex.stac import version_items

        latest = pystac.Item.from_dict(copy.deepcopy(self.documents(record)[1]))
        found_versions = version_items(record, latest, self.catalog, describe=self.open_data)
        docs = [_unlinked(v.to_dict) for v in found_versions]
        with self._lock:
            self._versions[key] = docs
            while len(self._versions) > self.size:
                self._versions.pop(next(iter(self._versions)))
        return docs

    def version(self, record: Record, item_id: str, base_url: str) -> dict[str, Any] | None:
        """A version Item (``{record}@{tag}``) with its links, or None."""
        for doc in self.versions(record):
            if doc["id"] == item_id:
                out = copy.deepcopy(doc)
                collection_id = self.collection_of(record)
                collection = f"{base_url}collections/{collection_id}"
                out["collection"] = collection_id
                out["links"] = [
                    {"rel": "self", "href": f"{collection}/items/{item_id}", "type": _GEOJSON},
                    {"rel": "parent", "href": collection, "type": _JSON},
                    {"rel": "collection", "href": collection, "type": _JSON},
                    {"rel": "root", "href": base_url, "type": _JSON},
                    {
                        "rel": "latest-version",
                        "href": f"{collection}/items/{record.id}",
                        "type": _GEOJSON,
                    },
                ]
                return out
        return None

    def collection(self, record: Record, base_url: str) -> dict[str, Any]:
        """The record's own Collection (a record in no group)."""
        return _linked_collection(copy.deepcopy(self.documents(record)[0]), record.id, base_url)

    def item(self, record: Record, base_url: str) -> dict[str, Any]:
        """The record's Item with its links: a new top level over the cached document.

        Only the top level is new (``collection``, ``links``); the values under it
        are the cached document's own, so whoever changes one copies it first
        (:func:`apply_fields` does). A deep copy per Item was a fifth of a search.
        """
        collection_id = self.collection_of(record)
        collection = f"{base_url}collections/{collection_id}"
        doc = {**self.documents(record)[1], "collection": collection_id}
        if _served_as_zarr(record):  # published products are also plain Zarr over HTTP
            doc["assets"] = {**doc.get("assets", {}), "zarr-http": _zarr_asset(record, base_url)}
        doc["links"] = [
            {"rel": "self", "href": f"{collection}/items/{record.id}", "type": _GEOJSON},
            {"rel": "parent", "href": collection, "type": _JSON},
            {"rel": "collection", "href": collection, "type": _JSON},
            {"rel": "root", "href": base_url, "type": _JSON},
        ]
        versions = self.versions(record)
        if versions:
            doc["links"].append(
                {
                    "rel": "predecessor-version",
                    "href": f"{collection}/items/{versions[0]['id']}",
                    "type": _GEOJSON,
                }
            )
        return doc

    def _versioned(self, record: Record) -> bool:
        """Whether to list the record's versions: an Icechunk product (local unless opening data)."""
        conv = record.metadata.get("convert")
        if not isinstance(conv, dict) or conv.get("format") not in ("icechunk", "virtual-icechunk"):
            return False
        if isinstance(conv.get("tags"), list):  # stored with the record: nothing to open
            return True
        url = str(conv.get("url") or "")
        return self.open_data or "://" not in url or url.startswith("file://")


def _served_as_zarr(record: Record) -> bool:
    from arcodex.catalog._access import is_published

    return is_published(record) and bool(record.metadata.get("convert", {}).get("product"))


def _zarr_asset(record: Record, base_url: str) -> dict[str, Any]:
    """The ``/zarr/{id}`` asset: any Zarr client opens its href with no storage options."""
    root = base_url.removesuffix("/").removesuffix("/stac")
    return {
        "href": f"{root}/zarr/{record.id}",
        "type": "application/vnd+zarr",
        "roles": ["data"],
        "title": "Zarr over HTTP (open with xarray.open_zarr)",
    }


def _linked_collection(doc: dict[str, Any], collection_id: str, base_url: str) -> dict[str, Any]:
    url = f"{base_url}collections/{collection_id}"
    doc["links"] = [
        {"rel": "self", "href": url, "type": _JSON},
        {"rel": "parent", "href": base_url, "type": _JSON},
        {"rel": "root", "href": base_url, "type": _JSON},
        {"rel": "items", "href": f"{url}/items", "type": _GEOJSON},
        {"rel": QUERYABLES_REL, "href": f"{url}/queryables", "type": "application/schema+json"},
    ]
    return doc


def _unlinked(to_dict: Any) -> dict[str, Any]:
    doc: dict[str, Any] = to_dict(include_self_link=False, transform_hrefs=False)
    doc.pop("links", None)
    scrub(doc)
    return doc


def scrub(doc: Any) -> None:
    """Remove secret-looking keys from a JSON document, in place, at any depth."""
    if isinstance(doc, dict):
        for key in [k for k in doc if str(k).lower() in _SECRET_KEYS]:
            del doc[key]
        for value in doc.values():
            scrub(value)
    elif isinstance(doc, list):
        for value in doc:
            scrub(value)


#: What ``fields`` gives when it names nothing to include: the least of a valid Item.
DEFAULT_FIELDS = frozenset(
    {"type", "stac_version", "id", "geometry", "bbox", "links", "assets", "properties.datetime"}
)
#: Kept whatever ``fields`` says (the spec allows it; a client needs them to use the Item).
_ALWAYS = frozenset({"id", "type"})


def apply_fields(
    doc: dict[str, Any], include: Iterable[str] | None = None, exclude: Iterable[str] = ()
) -> dict[str, Any]:
    """The Fields extension, with its include/exclude semantics.

    ``include`` None (missing) starts from every field, an empty one from
    :data:`DEFAULT_FIELDS`, any other from its own fields; then ``exclude``
    removes what ``include`` does not name. A nested path is more specific than
    its parent: excluding ``properties`` but including ``properties.datetime``
    keeps only that property, and the reverse drops only that one. Paths are
    dotted (``properties.title``, ``assets.data.href``).
    """
    excluded = set(exclude)
    asked = set(include or ())  # what the client named; a field it names is never excluded
    if include is None:
        if not excluded:
            return doc
        kept = copy.deepcopy(doc)
    else:
        wanted = asked or set(DEFAULT_FIELDS)
        if "properties.datetime" in wanted and doc.get("properties", {}).get("datetime") is None:
            wanted |= {"properties.start_datetime", "properties.end_datetime"}
        kept = {}
        for path in sorted(wanted | _ALWAYS | ({"collection", "stac_version"} - excluded)):
            _copy_path(doc, kept, path.split("."))
    for path in sorted(excluded - asked - _ALWAYS, key=lambda p: p.count(".")):
        _drop_path(kept, path.split("."))
        for inner in asked:
            if inner.startswith(path + "."):
                _copy_path(doc, kept, inner.split("."))
    return kept


def _copy_path(src: Mapping[str, Any], dst: dict[str, Any], parts: list[str]) -> None:
    head, rest = parts[0], parts[1:]
    if head not in src:
        return
    if not rest:
        dst[head] = copy.deepcopy(src[head])
    elif isinstance(src[head], Mapping):
        target = dst.get(head)
        if not isinstance(target, dict):
            target = dst[head] = {}
        _copy_path(src[head], target, rest)


def _drop_path(doc: dict[str, Any], parts: list[str]) -> None:
    head, rest = parts[0], parts[1:]
    if not rest:
        doc.pop(head, None)
    elif isinstance(doc.get(head), dict):
        _drop_path(doc[head], rest)
