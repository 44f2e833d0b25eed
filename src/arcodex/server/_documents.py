"""STAC documents of records, built once per record version and linked per request.

Building a Collection and Item (:func:`arcodex.stac.stac_for`) opens the data
for the datacube, which is slow; the documents are kept in memory per
``(record id, record version)``, so a record that changes is rebuilt and one
that does not is never reopened. Links depend on the request (its base URL),
so they are added to a copy on the way out.
"""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from arcodex.catalog import Catalog
    from arcodex.model import Record

__all__ = ["DocumentCache", "apply_fields", "scrub"]

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

    def __init__(self, catalog: Catalog, *, open_data: bool = True, size: int = 1024) -> None:
        self.catalog = catalog
        self.open_data = open_data
        self.size = size
        self._docs: OrderedDict[tuple[str, int], tuple[dict[str, Any], dict[str, Any]]] = (
            OrderedDict()
        )
        self._versions: dict[tuple[str, int], list[dict[str, Any]]] = {}
        self._collection_of: dict[tuple[str, int], str] = {}
        self._groups: dict[str, tuple[tuple[int, str], dict[str, Any]]] = {}
        self._lock = threading.Lock()
        from arcodex.stac._groups import Grouping

        self.grouping = Grouping(catalog)

    def collection_of(self, record: Record) -> str:
        """The id of the Collection holding the record's Items (a group's, or its own)."""
        if not self.grouping:
            return record.id
        key = (record.id, record.version)
        found = self._collection_of.get(key)
        if found is None:
            found = self._collection_of[key] = self.grouping.collection_id(record)
        return found

    def group(self, group_id: str, base_url: str) -> dict[str, Any]:
        """The Collection of a configured group, its extent kept until a member changes."""
        from arcodex.model import Condition, Query, SortKey
        from arcodex.stac._groups import group_collection

        conditions = [Condition(field="kind", value="dataset"), *self.grouping.conditions(group_id)]
        newest = self.catalog.search(
            Query(
                conditions=conditions, sort=[SortKey(field="updated_at", descending=True)], limit=1
            )
        ).records
        signature = (
            self.catalog.count(Query(conditions=conditions, limit=None)),
            newest[0].updated_at.isoformat() if newest else "",
        )
        with self._lock:
            cached = self._groups.get(group_id)
        if cached is None or cached[0] != signature:
            members = list(self.grouping.members(group_id))
            collection = group_collection(self.grouping.groups[group_id], members)
            cached = (signature, _unlinked(collection.to_dict))
            with self._lock:
                self._groups[group_id] = cached
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
        docs = [_unlinked(v.to_dict) for v in version_items(record, latest, self.catalog)]
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
        doc = copy.deepcopy(self.documents(record)[1])
        collection_id = self.collection_of(record)
        collection = f"{base_url}collections/{collection_id}"
        doc["collection"] = collection_id
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

    @staticmethod
    def _versioned(record: Record) -> bool:
        conv = record.metadata.get("convert")
        return isinstance(conv, dict) and conv.get("format") in ("icechunk", "virtual-icechunk")


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


def apply_fields(
    doc: dict[str, Any], include: Iterable[str] = (), exclude: Iterable[str] = ()
) -> dict[str, Any]:
    """The Fields extension: keep ``include`` (plus id, type, links), drop ``exclude``.

    Paths are top-level keys or ``properties.<name>``.
    """
    include = set(include)
    exclude = set(exclude)
    if include:
        kept: dict[str, Any] = {}
        for path in include | {"id", "type", "links", "collection", "stac_version"}:
            _copy_path(doc, kept, path)
        doc = kept
    for path in exclude - {"id", "type", "links"}:
        head, _, rest = path.partition(".")
        if rest and isinstance(doc.get(head), dict):
            doc[head] = {k: v for k, v in doc[head].items() if k != rest}
        elif not rest:
            doc.pop(head, None)
    return doc


def _copy_path(src: Mapping[str, Any], dst: dict[str, Any], path: str) -> None:
    head, _, rest = path.partition(".")
    if head not in src:
        return
    if not rest:
        dst[head] = src[head]
    elif isinstance(src[head], Mapping) and rest in src[head]:
        dst.setdefault(head, {})[rest] = src[head][rest]
