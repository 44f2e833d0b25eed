"""A catalog as a notebook shows it: where it is, its backend, and how many of what."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, unquote, urlsplit

from arcodex._html import box, code, esc, pairs, section

if TYPE_CHECKING:
    from arcodex.catalog._catalog import Catalog

__all__ = ["backend_text", "catalog_html"]


def backend_text(url: str, schema: str | None = None) -> str:
    """The backend in words: the SQLite file, or PostgreSQL's host, database and schema
    (never a password, nor any other parameter of the URL)."""
    if url.startswith("sqlite:"):
        return f"SQLite {url.removeprefix('sqlite:///').removeprefix('sqlite://')}"
    try:
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        host = parts.hostname or query.get("host") or "local socket"
        port = parts.port
    except ValueError:
        return "PostgreSQL (the URL cannot be read)"
    where = f"{host}:{port}" if port else host
    database = unquote(parts.path.lstrip("/")) or query.get("dbname") or "?"
    user = f", user {unquote(parts.username)}" if parts.username else ""
    in_schema = f", schema {schema}" if schema else ""
    return f"PostgreSQL {where}/{database}{in_schema}{user}"


def catalog_html(cat: Catalog) -> str:
    backend = cat.backend
    about = [
        ("root", code(str(cat.root), 400)),
        ("backend", backend_text(backend.url, getattr(backend, "schema", None))),
        ("profiles", ", ".join(sorted(cat.config.profiles))),
        ("schema policy", cat.config.schema_policy),
    ]
    try:
        stats = backend.stats()
    except Exception as exc:  # a closed or unreachable backend: say so, a repr must not raise
        return box("Catalog", code(str(cat.root), 400), pairs(about), f"<p>{esc(exc)}</p>")
    total = sum(stats.records_by_status.values())
    by_kind = dict(sorted(stats.records_by_kind.items(), key=lambda kv: (-kv[1], kv[0])))
    by_status = dict(sorted(stats.records_by_status.items(), key=lambda kv: (-kv[1], kv[0])))
    by_format = dict(sorted(stats.artifacts_by_format.items(), key=lambda kv: (-kv[1], kv[0])))
    return box(
        "Catalog",
        f"{code(str(cat.root), 400)} · {total} record{'s' if total != 1 else ''}",
        pairs(about),
        section("Records by kind", pairs(by_kind, what="kinds") if by_kind else ""),
        section("Records by status", pairs(by_status) if by_status else ""),
        section("Artifacts by format", pairs(by_format, what="formats") if by_format else ""),
    )
