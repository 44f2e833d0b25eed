"""A group's members file (CSV, YAML, or a list of mappings) read into checked specs.

One row per member: ``id``, ``sources`` and any :class:`~arcodex.convert.ConvertSpec`
field, plus padocc's ``updates`` and ``removals`` (global attribute fixes). In a CSV:

* ``sources``: one path, glob, directory, manifest or URL, or several separated by ``;``
  (relative paths are relative to the file's directory);
* ``updates``: a JSON object (``{"title": "T"}``) or ``key=value;key2=value2``;
* ``removals``: a JSON list (``["history"]``) or ``a;b``;
* other fields as the CLI writes them (``chunks`` ``time=24,lat=-1``, ``variables``
  ``tas,pr``, numbers and ``true``/``false`` as they read); an empty cell is the default.

A YAML file is a list of member mappings, or ``{defaults: {...}, members: [...]}``.
Every row becomes a spec here, and the first problems are refused in one line naming
the row and column, before anything is created.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arcodex.errors import ValidationError

__all__ = ["NAME_RE", "MemberRow", "parse_value", "read_members", "row_spec"]

#: Group names and member ids: what a STAC id and a file name both take.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
#: Member columns that are not ConvertSpec fields.
_OWN = ("id", "sources", "updates", "removals")
#: Spec fields whose CSV text is the value (never read as a number or boolean).
_TEXT = frozenset(
    {
        "to",
        "format",
        "dest",
        "profile",
        "key",
        "dest_profile",
        "source_profile",
        "concat_dim",
        "chunking",
        "codec",
        "grid",
        "group",
        "branch",
        "tag",
        "message",
        "cluster",
        "memory_limit",
        "title",
        "chunks",
        "shards",
        "variables",
    }
)
_SHOWN = 3


@dataclass(frozen=True)
class MemberRow:
    """One member as its row defines it: its id, its spec, and the row it came from."""

    id: str
    spec: Any  # ConvertSpec
    row: int

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "row": self.row, "spec": self.spec.to_dict()}


def read_members(
    members: str | os.PathLike[str] | Sequence[Mapping[str, Any]],
) -> tuple[list[dict[str, Any]], dict[str, Any], str | None, Path]:
    """The raw rows, the file's defaults, the file's name (None from Python), and the
    directory relative sources are read from."""
    if isinstance(members, str | os.PathLike):
        path = Path(members)
        try:
            text = path.read_text(encoding="utf-8-sig")
        except OSError as exc:
            raise ValidationError(
                f"cannot read the members file {path}: {exc.strerror or exc}; "
                "give a CSV or YAML file with one row per member"
            ) from None
        base = path.resolve().parent
        if path.suffix.lower() in (".yaml", ".yml", ".json"):
            rows, defaults = _yaml_rows(text, path.name)
        else:
            rows, defaults = _csv_rows(text, path.name), {}
        return rows, defaults, path.name, base
    if isinstance(members, Mapping) or not isinstance(members, Sequence):
        raise ValidationError(
            "members are a CSV or YAML file, or a list of mappings (one per member)"
        )
    given: list[dict[str, Any]] = []
    for i, row in enumerate(members, 1):
        if not isinstance(row, Mapping):
            raise ValidationError(f"member {i} is a {type(row).__name__}, not a mapping of fields")
        given.append(dict(row))
    return given, {}, None, Path.cwd()


def _csv_rows(text: str, name: str) -> list[dict[str, Any]]:
    reader = csv.DictReader(io.StringIO(text), skipinitialspace=True)
    header = [h.strip() for h in reader.fieldnames or []]
    if "id" not in header or "sources" not in header:
        raise ValidationError(
            f"{name}: the header must name the columns id and sources (and any spec field); "
            f"it has {', '.join(header) or 'none'}"
        )
    reader.fieldnames = header
    rows: list[dict[str, Any]] = []
    for raw in reader:
        if None in raw:
            raise ValidationError(
                f"{name} row {len(rows) + 1}: more cells than the header has columns; "
                "quote cells that hold commas"
            )
        row = {k: v.strip() for k, v in raw.items() if isinstance(v, str) and v.strip()}
        if row:
            rows.append(row)
    return rows


def _yaml_rows(text: str, name: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" (line {mark.line + 1})" if mark is not None else ""
        raise ValidationError(f"{name} is not YAML{line}; fix it") from None
    defaults: dict[str, Any] = {}
    if isinstance(data, Mapping):
        unknown = set(data) - {"members", "defaults", "title"}
        if unknown or "members" not in data:
            raise ValidationError(
                f"{name}: expected a list of members, or the keys members and defaults "
                f"(found {', '.join(sorted(map(str, data)))})"
            )
        defaults = dict(data.get("defaults") or {})
        data = data["members"]
    if not isinstance(data, list) or not all(isinstance(r, Mapping) for r in data):
        raise ValidationError(f"{name}: members are a list of mappings (id, sources, …)")
    return [dict(r) for r in data], defaults


def parse_value(field: str, value: Any) -> Any:
    """A CSV cell (or ``--set`` value) as the spec field takes it."""
    if not isinstance(value, str) or field in _TEXT or field in _OWN:
        return value
    import yaml

    try:
        return yaml.safe_load(value)
    except yaml.YAMLError:
        return value


def row_spec(
    row: Mapping[str, Any],
    defaults: Mapping[str, Any],
    base: Path,
    group: str,
    key: str | None,
) -> tuple[str, Any]:
    """A row's id and spec (``key``: the product's key in the catalog storage, when the
    row says no ``dest`` or ``key``). Raises ``_RowError`` naming the column."""
    from arcodex.convert import ConvertSpec

    fields = {**dict(defaults), **{k: v for k, v in row.items() if v not in (None, "")}}
    member = fields.pop("id", None)
    if member is None:
        raise _RowError("id", "required")
    member = str(member)
    if not NAME_RE.match(member):
        raise _RowError("id", f"{member!r} is not an id (letters, digits, . _ -)")
    if "sources" not in fields:
        raise _RowError("sources", "required")
    known = set(ConvertSpec.model_fields) | set(_OWN)
    for column in fields:
        if column not in known:
            raise _RowError(
                column, "not a member column (id, sources, updates, removals or a spec field)"
            )
    fields["sources"] = _sources(fields["sources"], base)
    attrs = _attr_fixes(fields.pop("updates", None), fields.pop("removals", None), fields)
    values = {k: parse_value(k, v) for k, v in fields.items()}
    if attrs is not None:
        values["attrs"] = attrs
    if values.get("dest") is None and values.get("key") is None and key is not None:
        values["key"] = key
    values.setdefault("title", f"{group} {member}")
    try:
        spec = ConvertSpec.from_dict(values)
    except ValidationError as exc:
        text = str(exc).removeprefix("convert spec: ")
        column, sep, message = text.partition(": ")
        if not sep or column.split(".")[0] not in ConvertSpec.model_fields:
            column, message = "sources", text
        raise _RowError(column.split(".")[0], message) from None
    return member, spec


def member_key(group: str, member: str, to: str, format: str) -> str:
    """Where a member's product goes in the catalog storage: ``products/<group>/<member><ext>``."""
    from arcodex.convert._place import _EXT
    from arcodex.convert._spec import product_format

    return f"products/{group}/{member}{_EXT[product_format(to, format)]}"


class _RowError(ValueError):
    def __init__(self, column: str, message: str) -> None:
        super().__init__(message)
        self.column = column
        self.message = message


def _sources(value: Any, base: Path) -> Any:
    if isinstance(value, str):
        items = [s.strip() for s in value.split(";") if s.strip()]
    elif isinstance(value, Sequence):
        items = [os.fspath(s) for s in value]
    else:
        raise _RowError("sources", "give paths, globs, URLs or a file listing them")
    if not items:
        raise _RowError("sources", "required")
    absolute = [s if "://" in s or os.path.isabs(s) else str(base / s) for s in items]
    return absolute[0] if len(absolute) == 1 else absolute


def _attr_fixes(updates: Any, removals: Any, fields: dict[str, Any]) -> dict[str, Any] | None:
    """``attrs`` with padocc's updates (global set) and removals (global delete) on top."""
    if updates is None and removals is None:
        return None
    attrs = fields.pop("attrs", None)
    attrs = dict(parse_value("attrs", attrs) or {})
    block = dict(attrs.get("global") or {})
    if updates is not None:
        block["set"] = {**dict(block.get("set") or {}), **_updates(updates)}
    if removals is not None:
        block["delete"] = [*(block.get("delete") or []), *_removals(removals)]
    attrs["global"] = block
    return attrs


def _updates(value: Any) -> dict[str, Any]:
    if isinstance(value, Mapping):
        return dict(value)
    text = str(value).strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise _RowError("updates", f"not a JSON object ({exc.msg})") from None
        if not isinstance(data, dict):
            raise _RowError("updates", "a JSON object of attribute: value")
        return data
    out: dict[str, Any] = {}
    for part in text.split(";"):
        if not part.strip():
            continue
        name, eq, val = part.partition("=")
        if not eq or not name.strip():
            raise _RowError("updates", f"bad term {part.strip()!r}; write key=value;key2=value2")
        out[name.strip()] = val.strip()
    return out


def _removals(value: Any) -> list[str]:
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [str(v) for v in value]
    text = str(value).strip()
    if text.startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise _RowError("removals", f"not a JSON list ({exc.msg})") from None
        if not isinstance(data, list):
            raise _RowError("removals", "a JSON list of attribute names")
        return [str(v) for v in data]
    return [s.strip() for s in re.split(r"[;,]", text) if s.strip()]


def check_rows(
    rows: Sequence[Mapping[str, Any]],
    defaults: Mapping[str, Any],
    base: Path,
    group: str,
    where: str,
    catalog_storage: bool,
) -> list[MemberRow]:
    """Every row as a :class:`MemberRow`, or one ValidationError naming the first problems."""
    problems: list[str] = []
    members: list[MemberRow] = []
    seen: dict[str, int] = {}
    for n, row in enumerate(rows, 1):
        try:
            fields = {**dict(defaults), **dict(row)}
            key = None
            if catalog_storage:
                member = str(fields.get("id") or "")
                to = str(parse_value("to", fields.get("to") or "zarr"))
                fmt = str(parse_value("format", fields.get("format") or "icechunk"))
                try:
                    key = member_key(group, member, to, fmt)
                except ValidationError as exc:
                    raise _RowError("to" if "target" in str(exc) else "format", str(exc)) from None
            member_id, spec = row_spec(row, defaults, base, group, key)
        except _RowError as exc:
            label = f" (id {row.get('id')})" if row.get("id") and exc.column != "id" else ""
            problems.append(f"row {n}{label} column {exc.column}: {exc.message}")
            continue
        if member_id in seen:
            problems.append(f"row {n} column id: {member_id!r} is also row {seen[member_id]}")
            continue
        seen[member_id] = n
        members.append(MemberRow(member_id, spec, n))
    if not rows:
        problems.append("no members")
    if problems:
        more = f" (and {len(problems) - _SHOWN} more)" if len(problems) > _SHOWN else ""
        raise ValidationError(
            f"{where}: {'; '.join(problems[:_SHOWN])}{more}; fix them and run group init again "
            "(nothing was created)"
        )
    return members
