"""A record as a notebook shows it: what it is, where and when, and what it holds."""

from __future__ import annotations

from typing import TYPE_CHECKING

from arcodex._html import (
    MAX_ROWS,
    Raw,
    badge,
    box,
    code,
    esc,
    more,
    pairs,
    period,
    plain_url,
    section,
    short_hash,
    size,
    table,
)

if TYPE_CHECKING:
    from arcodex.model._record import Artifact, Record

__all__ = ["locator_text", "record_html"]

#: Metadata keys shown as the extent, not again among the metadata.
_EXTENT_KEYS = ("bbox", "datetime", "start_datetime", "end_datetime")
#: Lineage sources shown per entry.
_SOURCES = 5


def record_html(record: Record) -> str:
    meta = record.metadata
    heading = (
        f"{code(record.id)} · {esc(record.kind)} · {badge(record.status)} · "
        f"version {record.version}"
    )
    about: list[tuple[str, object]] = []
    if record.title:
        about.append(("title", record.title))
    if record.description:
        about.append(("description", Raw(esc(record.description, 500))))
    if isinstance(meta.get("bbox"), list):
        about.append(("bbox", ", ".join(str(v) for v in meta["bbox"])))
    if when := period(meta):
        about.append(("time", when))
    if record.tags:
        shown = ", ".join(record.tags[:MAX_ROWS])
        extra = len(record.tags) - MAX_ROWS
        about.append(("tags", shown + (f" … {extra} more" if extra > 0 else "")))
    if record.schema_name:
        about.append(("schema", f"{record.schema_name} {record.schema_version or ''}".strip()))
    about.append(("created", _when(record.created_at, record.created_by)))
    about.append(("updated", _when(record.updated_at, record.updated_by)))
    other = [k for k in meta if k not in _EXTENT_KEYS]
    metadata = pairs(
        [(k, meta[k]) for k in other[:MAX_ROWS]], what="metadata keys", limit=MAX_ROWS
    ) + more(len(other) - MAX_ROWS, "metadata keys")
    artifacts = table(
        ("role", "format", "location", "size", "hashes", "status"),
        (_artifact_row(a) for a in record.artifacts),
        total=len(record.artifacts),
        what="artifacts",
    )
    lineage = table(
        ("operation", "relation", "sources"),
        (
            (
                code(x.operation_id or ""),
                x.relation,
                ", ".join(x.sources[:_SOURCES])
                + (f" … {len(x.sources) - _SOURCES} more" if len(x.sources) > _SOURCES else ""),
            )
            for x in record.lineage
        ),
        total=len(record.lineage),
        what="lineage entries",
    )
    return box(
        "Record",
        heading,
        pairs(about),
        section("Metadata", metadata if other else "", len(other)),
        section("Artifacts", artifacts if record.artifacts else "", len(record.artifacts)),
        section("Lineage", lineage if record.lineage else "", len(record.lineage)),
    )


def _when(at: object, user: str | None) -> str:
    text = at.isoformat() if hasattr(at, "isoformat") else str(at)
    return f"{text} by {user}" if user else text


def locator_text(artifact: Artifact) -> str:
    """Where an artifact is, as one line (never an inline payload or a password)."""
    loc = artifact.locator
    if loc.type == "local_path":
        return loc.path
    if loc.type == "fsspec_url":
        url = plain_url(loc.url)
        return f"{url} (profile {loc.profile})" if loc.profile else url
    if loc.type == "external_uri":
        return plain_url(loc.uri)
    if loc.type == "planned_path":
        return f"{loc.path} (planned)"
    if loc.type == "inline":
        return f"inline, {len(loc.data)} characters ({loc.encoding})"
    return f"{loc.bundle} : {loc.member}"


def _artifact_row(artifact: Artifact) -> tuple[object, ...]:
    hashes = ", ".join(short_hash(k, v) for k, v in list(artifact.hashes.items())[:3])
    return (
        artifact.role,
        artifact.format or artifact.media_type or "",
        code(locator_text(artifact)),
        size(artifact.size_bytes),
        hashes,
        badge(artifact.status),
    )
