"""Human output: rich tables and trees. Machine output is ``--json`` (see _app).

Tables fit the terminal (80 columns when not one): each cell is one line, cut
with ``…`` rather than wrapped; ids and counts are never cut, and columns of
least use are left out when even cut ones do not fit. Dates at midnight show
as the date alone.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

if TYPE_CHECKING:
    from arcodex.catalog import CatalogInfo
    from arcodex.model import Artifact, FieldSummary, Record

__all__ = [
    "Column",
    "console",
    "fit_widths",
    "print_events",
    "print_fields",
    "print_info",
    "print_json",
    "print_record",
    "print_records",
    "print_table",
    "short_date",
    "short_ids",
]

#: Short ids are at least this long: a ULID's first 10 characters are its
#: timestamp, so two more keep ids made in the same millisecond apart.
MIN_SHORT_ID = 12
MAX_METADATA_COLUMNS = 3


def console() -> Console:
    """A console on the current stdout (made per call so test runners can capture it)."""
    return Console(highlight=False, soft_wrap=False)


def print_json(data: Any) -> None:
    """One JSON document on stdout."""
    import typer

    typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def short_ids(ids: Sequence[str]) -> dict[str, str]:
    """The shortest prefix (at least MIN_SHORT_ID long) telling each id apart from the others."""
    out: dict[str, str] = {}
    ordered = sorted(set(ids))
    for i, full in enumerate(ordered):
        need = MIN_SHORT_ID
        for neighbour in (
            ordered[i - 1] if i else None,
            ordered[i + 1] if i + 1 < len(ordered) else None,
        ):
            if neighbour is None:
                continue
            common = 0
            for a, b in zip(full, neighbour, strict=False):
                if a != b:
                    break
                common += 1
            need = max(need, common + 1)
        out[full] = full if need >= len(full) else full[:need]
    return out


def _lookup(metadata: dict[str, Any], path: str) -> Any:
    node: Any = metadata
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


_MIDNIGHT = re.compile(
    r"^(?P<date>[+-]?\d{4}-\d{2}-\d{2})[T ]00:00(?::00(?:\.0+)?)?(?:Z|[+-]00:?00)?$"
)


def short_date(text: str) -> str:
    """``2020-01-01`` for ``2020-01-01T00:00:00Z`` (a date at midnight); other text unchanged."""
    found = _MIDNIGHT.match(text)
    return found["date"] if found else text


def _scalar(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return short_date(str(value))


# -- tables that fit --------------------------------------------------------------

#: Between two columns: a space, the rule, a space.
_GAP = 3


@dataclass
class Column:
    """One column of :func:`print_table`.

    ``fixed`` columns (ids, counts) are never cut; the others are cut down to
    ``min_width`` at most, sharing the room by ``weight``. When even that does
    not fit, ``optional`` columns are left out, lowest ``keep`` first.
    """

    header: str
    cells: Sequence[str | Text] = field(default_factory=list)
    fixed: bool = False
    min_width: int = 8
    weight: int = 1
    optional: bool = False
    keep: int = 0
    justify: Literal["left", "right"] = "left"

    def natural(self) -> int:
        cells = (c.cell_len if isinstance(c, Text) else cell_len(c) for c in self.cells)
        return max(cell_len(self.header), *cells, 0)


def _one_line(value: str | Text) -> Text:
    text = value.copy() if isinstance(value, Text) else Text(value)
    if "\n" in text.plain or "\t" in text.plain:
        text = Text(" ".join(text.plain.split()), style=text.style)
    return text


def fit_widths(columns: Sequence[Column], width: int) -> list[tuple[Column, int]]:
    """The columns to show and their widths, in at most ``width`` cells."""
    shown = list(columns)

    def floor(column: Column) -> int:
        natural = column.natural()
        return natural if column.fixed else min(natural, max(column.min_width, 1))

    def need() -> int:
        return sum(floor(c) for c in shown) + _GAP * (len(shown) - 1)

    while need() > width and any(c.optional for c in shown):
        shown.remove(min((c for c in shown if c.optional), key=lambda c: c.keep))
    widths = [floor(c) for c in shown]
    spare = width - need()
    naturals = [c.natural() for c in shown]
    while spare > 0:
        growing = [i for i, c in enumerate(shown) if not c.fixed and widths[i] < naturals[i]]
        if not growing:
            break
        i = min(growing, key=lambda i: widths[i] / shown[i].weight)
        widths[i] += 1
        spare -= 1
    return list(zip(shown, widths, strict=True))


def print_table(out: Console, columns: Sequence[Column], *, title: str | None = None) -> None:
    """One table, each cell on one line, fitted to ``out``'s width."""
    if title:
        out.print(Text(title))
    table = Table(show_edge=False, pad_edge=False)
    fitted = fit_widths(columns, out.width)
    for column, width in fitted:
        table.add_column(
            column.header, width=width, no_wrap=True, overflow="ellipsis", justify=column.justify
        )
    rows = max((len(c.cells) for c, _ in fitted), default=0)
    for i in range(rows):
        table.add_row(*(_one_line(c.cells[i]) if i < len(c.cells) else "" for c, _ in fitted))
    out.print(table)


_SHOWN_FIELDS = frozenset({"title", "description", "kind", "status", "id"})


def metadata_columns(records: Sequence[Record], wanted: Sequence[str]) -> list[str]:
    """Metadata paths worth a column: those the user asked about, else common top-level scalars."""
    columns = [
        p for p in dict.fromkeys(wanted) if any(_lookup(r.metadata, p) is not None for r in records)
    ]
    if columns:
        return columns[: MAX_METADATA_COLUMNS + 1]
    common: Counter[str] = Counter()
    for record in records:
        for key, value in record.metadata.items():
            # Keys that repeat a column already shown (title, description) add nothing.
            if not isinstance(value, dict | list) and key not in _SHOWN_FIELDS:
                common[key] += 1
    return [key for key, _ in common.most_common(MAX_METADATA_COLUMNS)]


def print_records(
    records: Sequence[Record], *, wanted_metadata: Sequence[str] = (), title: str | None = None
) -> None:
    """A table of records: title, short id, kind, status and a few metadata keys."""
    out = console()
    if not records:
        out.print("no records")
        return
    shorts = short_ids([r.id for r in records])
    columns = [
        Column("title", [r.title or "" for r in records], min_width=30, weight=3),
        Column("id", [shorts[r.id] for r in records], fixed=True),
        Column("kind", [r.kind for r in records], min_width=7),
        Column("status", [str(r.status) for r in records], fixed=True),
    ]
    asked = set(wanted_metadata)
    for rank, path in enumerate(metadata_columns(records, wanted_metadata)):
        columns.append(
            Column(
                path,
                [_scalar(_lookup(r.metadata, path)) for r in records],
                min_width=10,  # a date
                optional=path not in asked,
                keep=-rank,
            )
        )
    print_table(out, columns, title=title)


def _metadata_tree(tree: Tree, value: Any) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, dict | list) and item:
                _metadata_tree(tree.add(Text(str(key), style="bold")), item)
            else:
                tree.add(Text.assemble((f"{key}: ", "bold"), _scalar(item)))
    elif isinstance(value, list):
        if all(not isinstance(v, dict | list) for v in value):
            tree.add(Text(", ".join(_scalar(v) for v in value)))
        else:
            for i, item in enumerate(value):
                _metadata_tree(tree.add(Text(f"[{i}]")), item)


def _size(n: int | None) -> str:
    if n is None:
        return ""
    size = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return str(n)  # pragma: no cover - the loop always returns


def print_record(record: Record, locate: Callable[[Artifact], str]) -> None:
    """One record as a readable tree: fields, metadata and artifacts."""
    out = console()
    root = Tree(Text.assemble((record.id, "bold"), "  ", record.title or ""))
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    rows: list[tuple[str, str]] = [
        ("kind", record.kind),
        ("status", record.status),
        ("version", str(record.version)),
        ("tags", ", ".join(record.tags)),
        ("description", record.description or ""),
        ("created", f"{record.created_at.isoformat()} by {record.created_by or '?'}"),
        ("updated", f"{record.updated_at.isoformat()} by {record.updated_by or '?'}"),
    ]
    if record.schema_name:
        rows.append(("schema", f"{record.schema_name} {record.schema_version or ''}".strip()))
    for key, value in rows:
        if value:
            head.add_row(key, Text(value))
    root.add(head)
    if record.metadata:
        _metadata_tree(root.add(Text("metadata", style="bold")), record.metadata)
    if record.artifacts:
        branch = root.add(Text("artifacts", style="bold"))
        for artifact in record.artifacts:
            try:
                where = locate(artifact)
            except LookupError:
                where = f"({artifact.locator.type})"
            parts = [
                artifact.role,
                artifact.format or "",
                _size(artifact.size_bytes),
                artifact.status,
            ]
            branch.add(Text.assemble((" ".join(p for p in parts if p), "bold"), "  ", where))
    for link in record.lineage:
        sources = ", ".join(link.sources)
        root.add(Text(f"lineage: {link.relation} {sources} (operation {link.operation_id})"))
    out.print(root)


def _counts(heading: str, counts: dict[str, int]) -> list[Column]:
    ordered = sorted(counts.items())
    return [
        Column(heading, [key for key, _ in ordered], min_width=12),
        Column("count", [str(v) for _, v in ordered], fixed=True, justify="right"),
    ]


def print_info(info: CatalogInfo) -> None:
    """A catalog summary: where, what backend, how many of what, recent failures."""
    out = console()
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold", no_wrap=True)
    head.add_column(overflow="fold")
    for key, value in (
        ("catalog", info.root),
        ("backend", info.backend),
        ("arcodex", info.version),
        ("records", str(info.records)),
        ("default profile", info.default_profile),
        ("schema policy", info.schema_policy),
    ):
        head.add_row(key, Text(value))
    out.print(head)
    for heading, counts in (
        ("record kind", info.records_by_kind),
        ("record status", info.records_by_status),
        ("artifact format", info.artifacts_by_format),
    ):
        if counts:
            out.print()
            print_table(out, _counts(heading, counts))
    failed = info.recent_failed_operations
    if failed:
        out.print()
        shorts = short_ids([str(op.get("id", "")) for op in failed])
        errors = [op.get("error") or {} for op in failed]
        print_table(
            out,
            [
                Column("error", [f"{e.get('type', '')}: {e.get('message', '')}" for e in errors],
                       min_width=16, weight=3),
                Column("operation", [shorts[str(op.get("id", ""))] for op in failed], fixed=True),
                Column("action", [str(op.get("action", "")) for op in failed], min_width=7),
                Column("started", [_time(op.get("started_at")) for op in failed], fixed=True),
                Column("user", [str(op.get("user", "")) for op in failed], optional=True),
            ],
            title="recent failed operations",
        )  # fmt: skip


def _time(value: Any) -> str:
    """An ISO timestamp to the second, as ``2026-11-03 14:05:09`` (a midnight date alone)."""
    text = short_date(str(value or ""))
    if len(text) > 10 and text[10] in "T ":
        return text[:10] + " " + text[11:19]
    return text


def print_fields(fields: Sequence[FieldSummary]) -> None:
    """Metadata paths in use, with types, record counts and examples."""
    out = console()
    if not fields:
        out.print("no metadata fields")
        return
    print_table(
        out,
        [
            Column("path", [f.path for f in fields], min_width=20, weight=2),
            Column("types", [", ".join(f.types) for f in fields], min_width=7),
            Column("records", [str(f.count) for f in fields], fixed=True, justify="right"),
            Column(
                "examples",
                [", ".join(_scalar(v) for v in f.examples) for f in fields],
                min_width=10,
                weight=2,
            ),
        ],
    )


def print_events(events: Sequence[dict[str, Any]]) -> None:
    """Event log entries, oldest first."""
    out = console()
    if not events:
        out.print("no events match")
        return
    styles = {"error": "red", "warning": "yellow"}
    levels = [str(e.get("level", "")) for e in events]
    records = [str(e.get("record_id") or "") for e in events]
    operations = [str(e.get("operation_id") or "") for e in events]
    # Apart: a record and the operation that made it may differ in the last character only.
    short_records = {"": "", **short_ids([i for i in records if i])}
    short_operations = {"": "", **short_ids([i for i in operations if i])}
    print_table(
        out,
        [
            Column("time", [_time(e.get("timestamp")) for e in events], fixed=True),
            Column("level", [Text(v, style=styles.get(v, "")) for v in levels], fixed=True),
            Column("event", [str(e.get("event", "")) for e in events], min_width=22, weight=2),
            Column("message", [str(e.get("message", "")) for e in events], min_width=12, weight=3),
            Column("record", [short_records[i] for i in records], fixed=True, optional=True,
                   keep=3),
            Column("operation", [short_operations[i] for i in operations], fixed=True,
                   optional=True, keep=2),
            Column("user", [str(e.get("user") or "") for e in events], optional=True, keep=1),
        ],
    )  # fmt: skip
