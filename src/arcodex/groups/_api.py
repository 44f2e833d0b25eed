"""``init_group``, ``group_status``, ``member_detail`` and ``list_groups``."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

from arcodex.errors import ConflictError, NotFoundError, ValidationError
from arcodex.groups._records import (
    GROUP_KIND,
    MEMBER_KIND,
    MEMBER_OF,
    GroupStatus,
    MemberStatus,
    find_group,
    get_group,
    group_records,
    member_records,
    status_of,
)
from arcodex.groups._rows import NAME_RE, check_rows, read_members

if TYPE_CHECKING:
    from arcodex.catalog import Catalog

__all__ = ["group_status", "init_group", "list_groups", "member_detail", "open_catalog"]


def open_catalog(catalog: Any, stack: ExitStack) -> Catalog:
    """The catalog a call was given (a Catalog, or a path opened on ``stack``)."""
    from arcodex.convert._access import open_catalog_arg

    cat = open_catalog_arg(catalog, stack)
    if cat is None:
        raise ValidationError("a group lives in a catalog: pass one (a Catalog or its path)")
    return cat


def init_group(
    catalog: Catalog | str | os.PathLike[str],
    name: str,
    members: str | os.PathLike[str] | Sequence[Mapping[str, Any]],
    *,
    defaults: Mapping[str, Any] | None = None,
    title: str | None = None,
    user: str | None = None,
) -> GroupStatus:
    """Create the group ``name`` in ``catalog`` from a members file (CSV or YAML) or a list
    of mappings, every member ``pending``.

    ``defaults`` apply to every member (a row's own value wins), on top of the file's
    ``defaults:`` (YAML). Every row becomes a :class:`~arcodex.convert.ConvertSpec`
    here; the first bad rows are refused in one ValidationError naming each row and
    column, and nothing is created. A member's product goes, unless its row says
    ``dest`` or ``key``, to ``products/<name>/<member>.<ext>`` in the catalog's storage.

    Raises:
        ValidationError: a bad name, file or row.
        ConflictError: the catalog has a group of that name already.
    """
    from arcodex.model import Record

    if not NAME_RE.match(name):
        raise ValidationError(
            f"{name!r} is not a group name: letters, digits, '.', '_' and '-', "
            "starting with a letter or digit"
        )
    rows, file_defaults, source, base = read_members(members)
    given = {**file_defaults, **dict(defaults or {})}
    for column in ("id",):
        if column in given:
            raise ValidationError(f"defaults cannot set {column}; each member has its own")
    with ExitStack() as stack:
        cat = open_catalog(catalog, stack)
        if find_group(cat, name) is not None:
            raise ConflictError(
                f"the catalog has a group named {name!r} already; "
                f"see `arcodex group status {name}`, or choose another name"
            )
        checked = check_rows(rows, given, base, name, source or "members", catalog_storage=True)
        group = Record(
            kind=GROUP_KIND,
            title=title or name,
            description=f"The group {name} of {len(checked)} members"
            + (f", from {source}" if source else ""),
            metadata={
                "group": {
                    "name": name,
                    "defaults": _jsonable(given),
                    "source": source,
                    "members": [m.id for m in checked],
                },
                # The STAC Collection the group's products make (see arcodex.stac Grouping).
                "stac": {
                    "id": name,
                    "title": title or name,
                    "where": [f'{MEMBER_OF}.group="{name}"'],
                },
            },
            tags=["group"],
            created_by=user,
            updated_by=user,
        )
        records = [group]
        for member in checked:
            records.append(
                Record(
                    kind=MEMBER_KIND,
                    title=f"{name} {member.id}",
                    metadata={
                        "group": name,
                        "member": member.id,
                        "row": member.row,
                        "spec": member.spec.to_dict(),
                        "status": "pending",
                        "phase": None,
                        "reason": None,
                        "phases": {},
                        "log": [],
                        "history": [],
                    },
                    created_by=user,
                    updated_by=user,
                )
            )
        cat.add_records(records, user=user)
        return status_of(cat, name)


def group_status(catalog: Catalog | str | os.PathLike[str], name: str) -> GroupStatus:
    """The group's members and their status, with counts by status."""
    with ExitStack() as stack:
        return status_of(open_catalog(catalog, stack), name)


def list_groups(catalog: Catalog | str | os.PathLike[str]) -> list[GroupStatus]:
    """Every group of the catalog, by name."""
    with ExitStack() as stack:
        cat = open_catalog(catalog, stack)
        return [
            status_of(cat, str(r.metadata["group"]["name"]))
            for r in group_records(cat)
            if r.metadata["group"].get("name")
        ]


def member_detail(
    catalog: Catalog | str | os.PathLike[str], name: str, member_id: str
) -> dict[str, Any]:
    """Everything about one member: its status, spec, per-phase results, scan summary,
    check report, log lines and status history."""
    with ExitStack() as stack:
        cat = open_catalog(catalog, stack)
        get_group(cat, name)
        for record in member_records(cat, name):
            if record.metadata.get("member") == member_id:
                meta = record.metadata
                return {
                    **MemberStatus.of(record, cat.leases).to_dict(),
                    "group": name,
                    "record": record.id,
                    "spec": meta.get("spec"),
                    "phases": meta.get("phases") or {},
                    "fingerprint": meta.get("fingerprint"),
                    "scan": meta.get("scan"),
                    "check": meta.get("check"),
                    "log": list(meta.get("log") or []),
                    "history": list(meta.get("history") or []),
                }
        raise NotFoundError(
            f"group {name} has no member {member_id!r}; run `arcodex group status {name}`"
        )


def _jsonable(data: Mapping[str, Any]) -> dict[str, Any]:
    import json

    return dict(json.loads(json.dumps(dict(data), default=str)))
