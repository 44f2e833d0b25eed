"""Turn what people type (``--meta site=MHD``, ``--set a.b=1``) into API arguments."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from arcodex.errors import ValidationError
from arcodex.model import parse_value

__all__ = ["nest", "parse_assignments", "parse_list_or_value", "parse_paths"]


def _check_path(path: str, option: str, item: str) -> str:
    parts = path.split(".")
    if not path or any(not part or part != part.strip() for part in parts):
        raise ValidationError(
            f"{option} {item!r} has a bad key {path!r}; write KEY=VALUE with a dotted key "
            "like netcdf.attrs.site (no empty parts or spaces around dots)"
        )
    return path


def parse_assignments(items: Iterable[str], option: str) -> dict[str, Any]:
    """``["a.b=1", "site=MHD"]`` as ``{"a.b": 1, "site": "MHD"}`` (values typed by parse_value).

    Keys are dotted paths; ``[A,B]`` values are lists, as in query terms. A key
    given twice, or a key that is also the parent of another, is refused rather
    than silently overwritten.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ValidationError(
                f"{option} {item!r} is not KEY=VALUE; write e.g. {option} site=MHD"
            )
        key = _check_path(key.strip(), option, item)
        if raw == "":
            raise ValidationError(
                f"{option} {item!r} has no value; write {key}='\"\"' for an empty string"
            )
        if key in out:
            raise ValidationError(f"{option} gives {key!r} twice; give each key once")
        for other in out:
            if other.startswith(key + ".") or key.startswith(other + "."):
                raise ValidationError(
                    f"{option} sets both {other!r} and {key!r}; one is inside the other"
                )
        out[key] = parse_list_or_value(raw)
    return out


def parse_list_or_value(raw: str) -> Any:
    """A typed value, or ``[A,B]`` as a list of typed values (as in query terms)."""
    if raw.startswith("[") and raw.endswith("]"):
        return [parse_value(v.strip()) for v in raw[1:-1].split(",") if v.strip()]
    return parse_value(raw)


def parse_paths(items: Iterable[str], option: str) -> list[str]:
    """Dotted metadata paths (``--unset a.b``), checked and without duplicates."""
    out: list[str] = []
    for item in items:
        path = _check_path(item.strip(), option, item)
        if path not in out:
            out.append(path)
    return out


def nest(flat: dict[str, Any]) -> dict[str, Any]:
    """``{"a.b": 1}`` as ``{"a": {"b": 1}}`` (keys already checked by parse_assignments)."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, last = key.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return out
