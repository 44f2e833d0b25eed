"""HTML for notebooks: the pieces every ``_repr_html_`` of arcodex is built from.

Everything that may come from a user (ids, titles, metadata, paths, messages) goes
through :func:`esc` or a :func:`table` cell, which escape it; pre-built markup is
passed as :class:`Raw`. Every list is bounded: past its limit a table ends with a
line "… N more", so a record with 10,000 metadata keys stays a small page. The
output is well-formed XHTML (no void elements) and has no JavaScript.
"""

from __future__ import annotations

import html
import itertools
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "MAX_ROWS",
    "MAX_TEXT",
    "Raw",
    "badge",
    "box",
    "code",
    "esc",
    "more",
    "pairs",
    "period",
    "plain_url",
    "section",
    "short_hash",
    "size",
    "table",
    "value_text",
]

#: Rows a table shows before "… N more".
MAX_ROWS = 20
#: Characters a cell shows before "…".
MAX_TEXT = 200

_STATUS_COLOURS = {
    "pass": "#1a7f37",
    "done": "#1a7f37",
    "active": "#1a7f37",
    "available": "#1a7f37",
    "succeeded": "#1a7f37",
    "warn": "#9a6700",
    "running": "#0969da",
    "planned": "#0969da",
    "pending": "#57606a",
    "deprecated": "#9a6700",
    "fail": "#cf222e",
    "failed": "#cf222e",
    "missing": "#cf222e",
    "deleted": "#57606a",
}


class Raw(str):
    """Markup already built (and escaped) by this module: a table cell leaves it as is."""


def esc(value: Any, limit: int = MAX_TEXT) -> str:
    """``value`` as escaped text, cut to ``limit`` characters with "…"."""
    if isinstance(value, Raw):
        return value
    text = value_text(value)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return html.escape(text)


def value_text(value: Any) -> str:
    """A value as one line: strings as they are, other values as compact JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float | bool):
        return json.dumps(value)
    try:
        return json.dumps(value, ensure_ascii=False, separators=(", ", ": "), default=str)
    except (TypeError, ValueError):
        return str(value)


def code(value: Any, limit: int = MAX_TEXT) -> Raw:
    """``value`` escaped, in ``<code>`` (ids, paths)."""
    return Raw(f"<code>{esc(value, limit)}</code>")


def badge(status: str | None) -> Raw:
    """A status in bold, coloured by what it means (the word itself says it without colour)."""
    word = status or "?"
    colour = _STATUS_COLOURS.get(word.lower(), "#57606a")
    return Raw(
        f'<strong class="arcodex-status arcodex-status-{esc(word.lower(), 40)}" '
        f'style="color:{colour}">{esc(word, 40)}</strong>'
    )


def size(n: int | None) -> str:
    """Bytes for people: ``1.5 MiB``."""
    if n is None:
        return ""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


def short_hash(algorithm: str, value: str, keep: int = 12) -> str:
    """``sha256:0123456789ab…``."""
    return f"{algorithm}:{value[:keep]}…" if len(value) > keep else f"{algorithm}:{value}"


def plain_url(url: str) -> str:
    """``url`` without a user's password (``user:secret@host`` → ``user@host``)."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.hostname or ""
        if parts.port is not None:
            host = f"{host}:{parts.port}"
        user = f"{parts.username}@" if parts.username else ""
        return urlunsplit((parts.scheme, user + host, parts.path, parts.query, parts.fragment))
    except ValueError:
        return url


def period(metadata: Mapping[str, Any]) -> str:
    """The time a record covers, from its STAC-named metadata: ``START – END`` or ``DATETIME``."""
    start, end = metadata.get("start_datetime"), metadata.get("end_datetime")
    if start or end:
        return f"{start or '..'} – {end or '..'}"
    when = metadata.get("datetime")
    return str(when) if when else ""


def more(n: int, what: str = "") -> str:
    """The note ending a bounded list: "… N more rows"."""
    if n <= 0:
        return ""
    label = f" {what}" if what else ""
    return f'<p class="arcodex-more">… {n} more{esc(label, 80)}</p>'


def table(
    header: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    total: int | None = None,
    limit: int = MAX_ROWS,
    what: str = "",
    caption: str | None = None,
) -> str:
    """A table of the first ``limit`` rows, each cell escaped, then "… N more ``what``".

    Args:
        header: The column names.
        rows: The rows (only the first ``limit`` are read).
        total: How many rows there are (default: counted from ``rows``).
        limit: Rows shown.
        what: What a row is, for the note ("artifacts").
        caption: A caption (escaped).
    """
    shown = list(itertools.islice(rows, limit))
    if total is None:
        total = len(rows) if isinstance(rows, Sequence) else len(shown)
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in shown)
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return (
        f'<table class="arcodex-table">{cap}<thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table>{more(total - len(shown), what)}"
    )


def pairs(
    items: Mapping[str, Any] | Sequence[tuple[str, Any]],
    *,
    limit: int = MAX_ROWS,
    what: str = "",
) -> str:
    """A two-column table of names and values, bounded as :func:`table` is."""
    seq = items.items() if isinstance(items, Mapping) else items
    body = "".join(
        f'<tr><th style="text-align:left">{esc(k, 80)}</th><td>{esc(v)}</td></tr>'
        for k, v in itertools.islice(seq, limit)
    )
    return f'<table class="arcodex-pairs"><tbody>{body}</tbody></table>' + more(
        len(items) - min(limit, len(items)), what
    )


def section(name: str, body: str, count: int | None = None) -> str:
    """A titled part of a repr (nothing when ``body`` is empty)."""
    if not body:
        return ""
    n = f" ({count})" if count is not None else ""
    return f"<p><strong>{esc(name, 80)}</strong>{n}</p>{body}"


def box(kind: str, heading: str, *parts: str) -> str:
    """One object's repr: ``kind`` in bold, a ``heading`` (markup), then its parts."""
    inner = "".join(p for p in parts if p)
    return (
        f'<div class="arcodex-repr arcodex-{esc(kind, 40).lower()}">'
        f"<p><strong>{esc(kind, 40)}</strong> {heading}</p>{inner}</div>"
    )
