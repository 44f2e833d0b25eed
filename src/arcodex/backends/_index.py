"""What a record contributes to the search indexes, shared by every SQL backend.

Metadata is flattened into typed rows, one per leaf value (list elements
each get a row under the list's path), so that any dotted path can be found
through an index instead of by reading JSON documents.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import repeat
from typing import Any

import orjson

from arcodex.model import Record, normalize_bbox, parse_iso_period, to_epoch
from arcodex.model._values import DATE_RE

__all__ = [
    "IndexRows",
    "Prepared",
    "count_fields",
    "index_rows",
    "prepare",
    "prepare_many",
    "stat_type",
]

# Index value kinds in the numeric table.
NUMBER, BOOLEAN, DATE, OBJECT, ARRAY, NULL = "n", "b", "d", "o", "l", "x"


@dataclass(slots=True)
class IndexRows:
    """Rows one record adds to the indexes."""

    txt: set[tuple[str, str]]
    num: set[tuple[str, str, float]]
    stats: set[tuple[str, str]]
    text: str
    boxes: list[tuple[float, float, float, float]]
    time: tuple[float, float] | None


def stat_type(value: Any) -> str:
    """The JSON type name reported by ``fields``."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "date" if _is_date(value) else "string"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return "null"


def _is_date(text: str) -> bool:
    return len(text) >= 7 and text[4] == "-" and DATE_RE.match(text) is not None


def _date_epoch(text: str) -> float | None:
    """Epoch seconds of the start of an ISO date, or None if it is not one."""
    if len(text) < 7 or text[4] != "-" or DATE_RE.match(text) is None:
        return None
    try:
        # fromisoformat is fast and covers full dates and timestamps; partial
        # dates ("2020-06") fall back to the period parser.
        moment = datetime.fromisoformat(text)
    except ValueError:
        try:
            return to_epoch(parse_iso_period(text)[0])
        except ValueError:
            return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp() if moment.year > 1 else to_epoch(moment)


#: Extent keys have their own spatial and time indexes; their parts are not metadata rows.
_EXTENT_ARRAYS = frozenset({"bbox"})


def index_rows(record: Record) -> IndexRows:
    """Flatten a record's metadata into index rows; collect its text and extent."""
    return _index(record.title, record.description, record.tags, record.metadata)


def _index(
    title: str | None, description: str | None, tags: list[str], metadata: dict[str, Any]
) -> IndexRows:
    txt: set[tuple[str, str]] = set()
    num: set[tuple[str, str, float]] = set()
    stats: set[tuple[str, str]] = set()
    words: list[str] = []
    _walk(metadata.items(), None, False, txt, num, stats, words)

    meta = metadata
    boxes: list[tuple[float, float, float, float]] = []
    bbox = meta.get("bbox")
    if isinstance(bbox, list) and len(bbox) == 4:
        boxes = normalize_bbox(bbox)
    time: tuple[float, float] | None = None
    start_text = meta.get("start_datetime") or meta.get("datetime")
    end_text = meta.get("end_datetime") or meta.get("datetime") or start_text
    if isinstance(start_text, str) and isinstance(end_text, str):
        try:
            start = _period(start_text)[0]
            first, after = _period(end_text)
            # A partial end date ("2020") means the end of that period.
            end = first if first == after else after - 1e-6
            time = (start, max(start, end))
        except ValueError:
            time = None
    parts = [title or "", description or "", " ".join(tags), " ".join(words)]
    return IndexRows(txt=txt, num=num, stats=stats, text="\n".join(parts), boxes=boxes, time=time)


def _walk(
    items: Iterable[tuple[str, Any]],
    prefix: str | None,
    in_list: bool,
    txt: set[tuple[str, str]],
    num: set[tuple[str, str, float]],
    stats: set[tuple[str, str]],
    words: list[str],
) -> None:
    """Index rows of ``(key, value)`` pairs under ``prefix`` (list elements: the list's
    own path, ``in_list``). Scalars are handled in the loop, containers recurse: a bulk
    add spends much of its client time here."""
    for key, value in items:
        path = key if prefix is None else (prefix if in_list else f"{prefix}.{key}")
        kind = type(value)
        if kind is str:
            txt.add((path, value))
            words.append(value)
            epoch = _date_epoch(value) if len(value) >= 7 and value[4] == "-" else None
            if epoch is not None:
                num.add((path, DATE, epoch))
                stats.add((path, "date"))
            else:
                stats.add((path, "string"))
        elif kind is int:
            num.add((path, NUMBER, float(value)))
            stats.add((path, "integer"))
        elif kind is float:
            num.add((path, NUMBER, value))
            stats.add((path, "number"))
        elif kind is bool:
            num.add((path, BOOLEAN, 1.0 if value else 0.0))
            stats.add((path, "boolean"))
        elif kind is dict:
            num.add((path, OBJECT, 0.0))
            stats.add((path, "object"))
            _walk(value.items(), path, False, txt, num, stats, words)
        elif kind is list:
            if not in_list:
                num.add((path, ARRAY, 0.0))
                stats.add((path, "array"))
            if path not in _EXTENT_ARRAYS:
                _walk(zip(repeat(path), value), path, True, txt, num, stats, words)
        elif value is None:
            num.add((path, NULL, 0.0))
            stats.add((path, "null"))


#: Parsed periods of recent texts (many records share their dates): (start, after) epochs.
_PERIODS: dict[str, tuple[float, float]] = {}


def _period(text: str) -> tuple[float, float]:
    """``parse_iso_period`` in epoch seconds, remembered for the texts seen last."""
    known = _PERIODS.get(text)
    if known is None:
        first, after = parse_iso_period(text)
        known = (to_epoch(first), to_epoch(after))
        if len(_PERIODS) >= 65_536:
            _PERIODS.clear()
        _PERIODS[text] = known
    return known


#: A record ready to insert: its column values (no rid), JSON document, tags,
#: index rows and artifact rows. Plain tuples, so that it pickles fast.
Prepared = tuple[tuple[Any, ...], str, list[str], IndexRows, list[tuple[Any, ...]]]


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def prepare(doc: str) -> Prepared:
    """Everything a backend writes for one record, from its JSON document alone
    (the same document it stores, so index and document cannot disagree)."""
    try:
        data = orjson.loads(doc)
    except orjson.JSONDecodeError:  # what orjson refuses (lone surrogates, huge integers)
        data = json.loads(doc)
    boxes_time = _index(data["title"], data["description"], data["tags"], data["metadata"])
    columns = (
        data["id"],
        data["kind"],
        data["status"],
        data["version"],
        data["title"],
        data["description"],
        _epoch(data["created_at"]),
        _epoch(data["updated_at"]),
        data["created_by"],
        data["updated_by"],
        data["schema_name"],
        data["schema_version"],
    )
    artifacts = []
    for art in data["artifacts"]:
        loc = art["locator"]
        location = loc.get("path") or loc.get("url") or loc.get("uri")
        meta = art.get("metadata") or {}
        mtime = meta.get("source_mtime_ns")
        artifacts.append(
            (
                art["id"],
                art["role"],
                art["format"],
                art["media_type"],
                art["status"],
                art["size_bytes"],
                int(art["managed"]),
                loc["type"],
                location,
                (art.get("hashes") or {}).get("sha256"),
                meta.get("source_path") if isinstance(meta.get("source_path"), str) else None,
                mtime if isinstance(mtime, int) and not isinstance(mtime, bool) else None,
            )
        )
    return columns, doc, data["tags"], boxes_time, artifacts


def prepare_many(docs: list[str]) -> list[Prepared]:
    """:func:`prepare` for a batch."""
    return [prepare(doc) for doc in docs]


def count_fields(stats: Counter[tuple[str, str]], idx: IndexRows, sign: int) -> None:
    """Add (``sign`` +1) or take away (-1) one record's paths and types in field counts
    (``(path, "*")`` counts the records holding a path)."""
    paths = {(path, "*") for path, _ in idx.stats}
    if sign > 0:
        stats.update(idx.stats)  # counting an iterable runs in C
        stats.update(paths)
    else:
        stats.subtract(idx.stats)
        stats.subtract(paths)
