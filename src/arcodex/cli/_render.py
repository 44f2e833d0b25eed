"""Human output: rich tables and trees. Machine output is ``--json`` (see _app)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

if TYPE_CHECKING:
    from arcodex.catalog import CatalogInfo
    from arcodex.model import Artifact, FieldSummary, Record

__all__ = [
    "console",
    "print_fields",
    "print_info",
    "print_json",
    "print_record",
    "print_records",
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


def _scalar(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


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
    """A table of records: short id, kind, status, title and a few metadata keys."""
    out = console()
    if not records:
        out.print("no records")
        return
    shorts = short_ids([r.id for r in records])
    columns = metadata_columns(records, wanted_metadata)
    if title:
        out.print(Text(title))
    table = Table(show_edge=False, pad_edge=False)
    table.add_column("id", no_wrap=True)
    table.add_column("kind", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("title", overflow="fold")
    for path in columns:
        table.add_column(path, overflow="fold")
    for record in records:
        table.add_row(
            Text(shorts[record.id]),
            Text(record.kind),
            Text(record.status),
            Text(record.title or ""),
            *(Text(_scalar(_lookup(record.metadata, p))) for p in columns),
        )
    out.print(table)


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


def _counts(heading: str, counts: dict[str, int]) -> Table:
    table = Table(show_edge=False, pad_edge=False)
    table.add_column(heading)
    table.add_column("count", justify="right")
    for key, value in sorted(counts.items()):
        table.add_row(Text(key), str(value))
    return table


def print_info(info: CatalogInfo) -> None:
    """A catalog summary: where, what backend, how many of what, recent failures."""
    out = console()
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
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
            out.print(_counts(heading, counts))
    if info.recent_failed_operations:
        out.print()
        out.print(Text("recent failed operations"))
        table = Table(show_edge=False, pad_edge=False)
        for name in ("id", "action", "user", "started", "error"):
            table.add_column(name, overflow="fold")
        for op in info.recent_failed_operations:
            error = op.get("error") or {}
            table.add_row(
                Text(str(op.get("id", ""))),
                Text(str(op.get("action", ""))),
                Text(str(op.get("user", ""))),
                Text(str(op.get("started_at", ""))),
                Text(f"{error.get('type', '')}: {error.get('message', '')}"),
            )
        out.print(table)


def print_fields(fields: Sequence[FieldSummary]) -> None:
    """Metadata paths in use, with types, record counts and examples."""
    out = console()
    if not fields:
        out.print("no metadata fields")
        return
    table = Table(show_edge=False, pad_edge=False)
    table.add_column("path", no_wrap=True)
    table.add_column("types")
    table.add_column("records", justify="right")
    table.add_column("examples", overflow="fold")
    for summary in fields:
        table.add_row(
            Text(summary.path),
            Text(", ".join(summary.types)),
            str(summary.count),
            Text(", ".join(_scalar(v) for v in summary.examples)),
        )
    out.print(table)


def print_events(events: Sequence[dict[str, Any]]) -> None:
    """Event log entries, oldest first."""
    out = console()
    if not events:
        out.print("no events match")
        return
    table = Table(show_edge=False, pad_edge=False)
    for column in ("time", "level", "event", "user", "record", "operation"):
        table.add_column(column, no_wrap=True)
    table.add_column("message", overflow="fold")
    styles = {"error": "red", "warning": "yellow"}
    for event in events:
        level = str(event.get("level", ""))
        table.add_row(
            Text(str(event.get("timestamp", ""))[:19].replace("T", " ")),
            Text(level, style=styles.get(level, "")),
            Text(str(event.get("event", ""))),
            Text(str(event.get("user") or "")),
            Text(str(event.get("record_id") or "")[:12]),
            Text(str(event.get("operation_id") or "")[:12]),
            Text(str(event.get("message", ""))),
        )
    out.print(table)
