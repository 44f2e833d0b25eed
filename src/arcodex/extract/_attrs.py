"""Attributes as plain JSON: what metadata records and STAC can hold (no NaN, no numpy)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = ["clean_attrs", "clean_value", "metadata_key"]


def metadata_key(name: Any) -> str:
    """``name`` as a metadata key: text without dots (dots separate query paths)."""
    text = name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)
    return text.replace(".", "_") or "_"


_DROP = object()


def clean_value(value: Any) -> Any:
    """``value`` as plain JSON, or None when nothing of it survives (NaN, inf)."""
    out = _json(value)
    return None if out is _DROP else out


def clean_attrs(attrs: Mapping[Any, Any]) -> dict[str, Any]:
    """Attributes as plain JSON, keyed by :func:`metadata_key`; NaN and inf are left out."""
    out: dict[str, Any] = {}
    for key, value in attrs.items():
        clean = _json(value)
        if clean is not _DROP:
            out[metadata_key(key)] = clean
    return out


def _json(value: Any) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else _DROP
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, Mapping):
        return clean_attrs(value)
    tolist = getattr(value, "tolist", None)
    if callable(tolist) and getattr(value, "ndim", None) is not None:
        # numpy arrays and scalars: tolist() gives Python values (a scalar for 0-d).
        return _json(tolist())
    if isinstance(value, list | tuple):
        items = [_json(item) for item in value]
        return [item for item in items if item is not _DROP]
    item = getattr(value, "item", None)
    if callable(item):
        return _json(item())
    return str(value)
