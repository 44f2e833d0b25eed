"""Record metadata as the catalog edits it: deep merges, dotted paths, checks, messages."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import suppress
from typing import Any

from arcodex.errors import ValidationError
from arcodex.model import check_metadata

__all__ = ["merge", "metadata_of", "pydantic_message", "set_path", "unset_path"]


def merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge ``extra`` into a copy of ``base`` (``extra`` wins)."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def unset_path(metadata: dict[str, Any], dotted: str) -> bool:
    """Remove ``a.b.c`` from ``metadata``; False when it is not there."""
    parts = dotted.split(".")
    node: Any = metadata
    for part in parts[:-1]:
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    if isinstance(node, dict) and parts[-1] in node:
        del node[parts[-1]]
        return True
    return False


def set_path(metadata: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``a.b.c`` in ``metadata``, making the dicts on the way."""
    parts = dotted.split(".")
    node = metadata
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


def metadata_of(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    """User metadata as plain JSON, or a ValidationError naming what is wrong."""
    try:
        result: dict[str, Any] = check_metadata(dict(metadata or {}))
    except ValueError as exc:
        raise ValidationError(f"bad metadata: {exc}") from None
    return result


def pydantic_message(exc: Exception) -> str:
    """The first problem of a Pydantic error as one line (``loc: message``)."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        with suppress(Exception):
            first = errors()[0]
            loc = ".".join(str(p) for p in first.get("loc", ()))
            msg = str(first.get("msg", exc)).removeprefix("Value error, ")
            return f"{loc}: {msg}" if loc else msg
    return str(exc)
