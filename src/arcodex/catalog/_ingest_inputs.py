"""What a batch ingest is asked to register: files, globs, directories and manifests,
expanded into one list of files, each with the options its manifest row gives it.

- a file is itself; a glob (``*``, ``?``, ``[``; ``**`` recurses) is the files it
  matches; a directory is every file under it, hidden ones (``.name``) left out;
- a manifest (``--manifest``; a CSV or text file given as an input is a file to
  register, like any other) is a text file with one path or glob per line (blank lines
  and ``#`` comments skipped), or a ``.csv`` file with a ``path`` column and optional
  ``title``, ``kind`` and ``tags`` (``a;b``) columns; every other column is metadata
  of that file (typed as ``--meta`` values are; dotted names nest). Relative paths
  are relative to the manifest.

An input that names nothing (a path that does not exist, a glob that matches nothing,
a directory with no files, a manifest that cannot be read or has no ``path`` column)
is refused with one line, before anything is read; a file a manifest lists that is not
there is that file's failure, found when the ingest plans.
"""

from __future__ import annotations

import csv
import glob
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arcodex.catalog._add_pipeline import FileOptions
from arcodex.errors import NotFoundError, ValidationError
from arcodex.model import parse_value

__all__ = ["Wanted", "resolve_inputs"]

_MAGIC = frozenset("*?[")
#: Manifest columns that are options of the file, not its metadata.
_OPTION_COLUMNS = frozenset({"path", "title", "kind", "tags"})


@dataclass(frozen=True)
class Wanted:
    """One file an ingest is asked to register: its path as given (absolute) and the
    options its manifest row gives it."""

    path: str
    options: FileOptions


def resolve_inputs(inputs: Sequence[str], manifests: Sequence[str] = ()) -> list[Wanted]:
    """Every file ``manifests`` and then ``inputs`` name, in order, each once (the first
    mention wins, so a manifest's row beats a glob); refuses an input that names nothing
    (see the module docstring)."""
    if not inputs and not manifests:
        raise ValidationError(
            "nothing to ingest: give files, globs or directories, or --manifest FILE"
        )
    wanted: list[Wanted] = []
    # Manifests first: a file a manifest row describes and a glob also matches gets its row.
    for manifest in manifests:
        wanted.extend(_manifest(Path(manifest).expanduser()))
    for given in inputs:
        wanted.extend(Wanted(p, _NONE) for p in _expand(given, strict=True))
    seen: set[str] = set()
    unique: list[Wanted] = []
    for item in wanted:
        if item.path not in seen:
            seen.add(item.path)
            unique.append(item)
    return unique


_NONE = FileOptions()


def _expand(item: str, *, strict: bool, base: Path | None = None) -> Iterator[str]:
    """The files ``item`` names (absolute). ``strict``: a path that is not there is an
    error (a command-line input) rather than a file that fails (a manifest's line)."""
    text = os.path.expanduser(item)
    if base is not None and not os.path.isabs(text):
        text = os.path.join(base, text)
    text = os.path.abspath(text)
    if _MAGIC & set(item):
        matches = [m for m in sorted(glob.glob(text, recursive=True)) if not os.path.isdir(m)]
        if not matches:
            raise ValidationError(f"no files match {item}; check the pattern")
        yield from matches
        return
    if strict and os.path.isdir(text):
        found = _walk(text)
        if not found:
            raise ValidationError(f"directory {item} holds no files; check the path")
        yield from found
        return
    if strict and not os.path.lexists(text):
        raise NotFoundError(
            f"{item} does not exist; check the path (a list of files goes with --manifest)"
        )
    yield text


def _walk(top: str) -> list[str]:
    """Every file under ``top``, sorted, hidden files and directories left out."""
    found: list[str] = []
    for root, dirs, files in os.walk(top):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found.extend(os.path.join(root, f) for f in sorted(files) if not f.startswith("."))
    return found


def _manifest(path: Path) -> list[Wanted]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotFoundError(f"manifest {path} does not exist; check the path") from None
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "it is not UTF-8 text"
        raise ValidationError(
            f"cannot read manifest {path}: {why}; give a text or CSV file"
        ) from None
    base = path.parent.resolve()
    if path.suffix.lower() == ".csv":
        return _csv_manifest(path, text, base)
    wanted: list[Wanted] = []
    for line in text.splitlines():
        entry = line.strip()
        if entry and not entry.startswith("#"):
            wanted.extend(Wanted(p, _NONE) for p in _expand(entry, strict=False, base=base))
    if not wanted:
        raise ValidationError(f"manifest {path} lists no files; give one path per line")
    return wanted


def _csv_manifest(path: Path, text: str, base: Path) -> list[Wanted]:
    reader = csv.DictReader(text.splitlines())
    columns = [c.strip() if c else "" for c in reader.fieldnames or []]
    if "path" not in columns:
        raise ValidationError(
            f"manifest {path} needs a 'path' column (found {', '.join(columns) or 'no header'}); "
            "put the file paths under a column named path"
        )
    for column in columns:
        if column not in _OPTION_COLUMNS and not _good_key(column):
            raise ValidationError(
                f"manifest {path} has a bad column name {column!r}; name metadata columns "
                "like site or netcdf.attrs.site (no empty parts or spaces around dots)"
            )
    keys = {c for c in columns if c not in _OPTION_COLUMNS}
    for child in sorted(keys):
        parts = child.split(".")
        parent = next((p for i in range(1, len(parts)) if (p := ".".join(parts[:i])) in keys), None)
        if parent is not None:
            raise ValidationError(
                f"manifest {path} has columns {parent!r} and {child!r}; one is inside the "
                "other, keep one"
            )
    if len(set(columns)) != len(columns):
        raise ValidationError(f"manifest {path} names a column twice; give each column once")
    reader.fieldnames = columns
    wanted: list[Wanted] = []
    for number, row in enumerate(reader, start=2):
        if None in row:
            raise ValidationError(
                f"manifest {path} row {number} has more cells than the header has columns"
            )
        entry = (row.get("path") or "").strip()
        if not entry:
            raise ValidationError(f"manifest {path} row {number} has no path; fill it or drop it")
        options = _row_options(row)
        wanted.extend(Wanted(p, options) for p in _expand(entry, strict=False, base=base))
    if not wanted:
        raise ValidationError(f"manifest {path} lists no files; give one row per file")
    return wanted


def _row_options(row: dict[str, Any]) -> FileOptions:
    metadata: dict[str, Any] = {}
    for column, raw in row.items():
        cell = (raw or "").strip()
        if column in _OPTION_COLUMNS or not cell:
            continue
        *parents, last = column.split(".")
        node = metadata
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = parse_value(cell)
    tags = tuple(t.strip() for t in (row.get("tags") or "").split(";") if t.strip())
    return FileOptions(
        metadata=metadata,
        title=(row.get("title") or "").strip() or None,
        kind=(row.get("kind") or "").strip() or None,
        tags=tags,
    )


def _good_key(column: str) -> bool:
    parts = column.split(".")
    return bool(column) and all(part and part == part.strip() for part in parts)
