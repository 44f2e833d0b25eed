"""The duplicate check of an add: a file or URI the catalog holds already is refused.

The same file is the same content (sha256), wherever it was copied from; a file
registered in place, or a URI, is also the same when its path or URI is. The
check is one indexed query per add (:meth:`CatalogBackend.holders`); records
added by :meth:`Catalog.add_records` (prepared by converters and plugins) are
not checked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from arcodex.errors import ConflictError

if TYPE_CHECKING:
    from arcodex.backends import CatalogBackend

__all__ = ["Addition", "clashes", "guard_keys", "refuse_duplicates"]

#: How many files a refusal names before it says "and N more".
_NAMED = 3


@dataclass(frozen=True)
class Addition:
    """One file or URI being added: how the user named it, its content and its place."""

    label: str
    sha256: str | None = None
    #: The paths or URI it is known by (a path under the catalog root also relative to it).
    locations: tuple[str, ...] = ()

    @property
    def keys(self) -> tuple[str, ...]:
        """What makes another file the same as this one."""
        return (self.sha256, *self.locations) if self.sha256 else self.locations


def clashes(backend: CatalogBackend, additions: Sequence[Addition]) -> list[tuple[int, str]]:
    """Each addition the catalog holds already, or that repeats an earlier one, as
    ``(its index, why)``; one indexed query."""
    found = backend.holders(
        sha256=[a.sha256 for a in additions if a.sha256],
        locations=[place for a in additions for place in a.locations],
    )
    holders: dict[str, dict[str, str]] = {}
    for value, record_id, status in found:
        holders.setdefault(value, {})[record_id] = status
    out: list[tuple[int, str]] = []
    first: dict[str, str] = {}
    for i, add in enumerate(additions):
        ids: dict[str, str] = {}
        for key in add.keys:
            ids.update(holders.get(key, {}))
        if ids:
            out.append((i, f"{add.label} is already in the catalog as record {_records(ids)}"))
            continue
        earlier = next((first[k] for k in add.keys if k in first), None)
        if earlier == add.label:
            out.append((i, f"{add.label} is given twice"))
        elif earlier is not None:
            out.append((i, f"{add.label} is the same file as {earlier}"))
        for key in add.keys:
            first.setdefault(key, add.label)
    return out


def guard_keys(additions: Sequence[Addition]) -> list[str]:
    """What an add holds from its duplicate check to its commit (a catalog shared by
    several hosts makes another add of the same content or place wait meanwhile)."""
    return sorted({key for add in additions for key in add.keys})


def refuse_duplicates(backend: CatalogBackend, additions: Sequence[Addition]) -> None:
    """Raise :class:`ConflictError` naming the records that hold any of ``additions``
    already (or the additions that repeat one another), in one line."""
    found = [why for _, why in clashes(backend, additions)]
    if not found:
        return
    named = "; ".join(found[:_NAMED])
    more = f"; and {len(found) - _NAMED} more" if len(found) > _NAMED else ""
    raise ConflictError(
        f"{named}{more}; nothing added: use the existing record, or add anyway with "
        "--allow-duplicate (allow_duplicate=True)"
    )


def _records(ids: dict[str, str]) -> str:
    """The record ids, a deleted one with how to bring it back."""
    return ", ".join(
        f"{rid} (deleted; `arcodex restore {rid}` brings it back)" if status == "deleted" else rid
        for rid, status in sorted(ids.items())
    )
