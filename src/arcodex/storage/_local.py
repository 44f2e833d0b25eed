"""Managed storage on a local or shared filesystem: atomic, no-clobber writes."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import shutil
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from arcodex.errors import StorageError, ValidationError
from arcodex.model import LocalPath

__all__ = ["LocalStore", "candidate_keys", "hash_file", "render_path"]

_CHUNK = 4 * 1024 * 1024
_UNSAFE = re.compile(r"[^A-Za-z0-9._@+-]+")
_FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.]*)\}")


def candidate_keys(key: str, tries: int = 1000) -> Iterator[str]:
    """``key``, then ``key`` with ``-1``, ``-2`` … before its extension: names to try
    until one is free (writes never overwrite)."""
    stem, dot, ext = key.rpartition("/")[2].partition(".")
    prefix = key.rpartition("/")[0]
    for attempt in range(tries):
        name = f"{stem}-{attempt}{dot}{ext}" if attempt else f"{stem}{dot}{ext}"
        yield f"{prefix}/{name}" if prefix else name


def hash_file(path: Path) -> tuple[int, str]:
    """Size in bytes and sha256 hex digest of a file, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            size += len(chunk)
            digest.update(chunk)
    return size, digest.hexdigest()


def _safe(component: str) -> str:
    cleaned = _UNSAFE.sub("_", component).strip("._") or "_"
    return cleaned[:120]


def render_path(template: str, values: Mapping[str, Any]) -> str:
    """Fill a path template like ``{kind}/{metadata.site}/{id}{ext}``.

    Every value is reduced to safe characters, so no value can add a
    directory level, climb out with ``..`` or start a hidden file; a missing
    value is a ValidationError naming it.
    """

    def lookup(match: re.Match[str]) -> str:
        name = match[1]
        value: Any = values
        for part in name.split("."):
            if not isinstance(value, Mapping) or part not in value:
                raise ValidationError(
                    f"path template {template!r} needs {{{name}}}, which this record does not have;"
                    " set it with --meta or change the profile's path_template"
                )
            value = value[part]
        text = str(value)
        if name == "ext":
            return "." + _safe(text.lstrip(".")) if text else ""
        return _safe(text)

    rendered = _FIELD.sub(lookup, template)
    parts = [p for p in rendered.split("/") if p not in ("", ".")]
    if not parts or any(p == ".." for p in parts):
        raise ValidationError(f"path template {template!r} gives an unusable path {rendered!r}")
    return "/".join(parts)


class LocalStore:
    """Files under one root directory, written atomically (temp + fsync + rename)."""

    def __init__(self, root: Path, locator_prefix: str | None = None) -> None:
        self.root = root
        self.locator_prefix = locator_prefix if locator_prefix is not None else str(root) + "/"

    def locator(self, key: str) -> LocalPath:
        """How a record points at ``key``."""
        return LocalPath(path=self.locator_prefix + key)

    def exists(self, key: str) -> bool:
        return self.full_path(key).exists()

    def full_path(self, key: str) -> Path:
        """The absolute path of ``key`` (a relative path under the root)."""
        return self.root / key

    def write_file(self, source: Path, key: str) -> tuple[str, int, str]:
        """Copy ``source`` to ``key``; return (key actually used, size, sha256)."""
        with open(source, "rb") as fh:
            return self.write_stream(fh, key)

    def write_bytes(self, data: bytes, key: str) -> tuple[str, int, str]:
        """Write ``data`` to ``key``; return (key actually used, size, sha256)."""
        return self.write_stream(io.BytesIO(data), key)

    def write_stream(self, stream: BinaryIO, key: str) -> tuple[str, int, str]:
        """Write a stream atomically and without overwriting; a taken key gets a ``-N`` suffix."""
        tmp, size, sha = self.stage_stream(stream, key)
        return self.place(tmp, key), size, sha

    def stage_file(self, source: Path, key: str) -> tuple[Path, int, str]:
        """Copy ``source`` to a temporary file where ``key`` goes, fsync'd: the slow half of
        :meth:`write_file`, which may run for many files at once (threads); then
        :meth:`place` it. Returns (temporary file, size, sha256)."""
        try:
            with open(source, "rb") as fh:
                return self.stage_stream(fh, key)
        except OSError as exc:
            raise StorageError(f"cannot read {source}: {exc.strerror or exc}") from exc

    def stage_stream(self, stream: BinaryIO, key: str) -> tuple[Path, int, str]:
        """Write a stream to a temporary file where ``key`` goes, fsync'd (see :meth:`place`).

        A temporary file (``.NAME.HEX.tmp``) left by a killed process is removed by
        ``arcodex recover``."""
        dest = self.full_path(key)
        tmp = dest.parent / f".{dest.name}.{uuid.uuid4().hex}.tmp"
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            digest = hashlib.sha256()
            size = 0
            try:
                with open(tmp, "xb") as out:
                    while chunk := stream.read(_CHUNK):
                        out.write(chunk)
                        digest.update(chunk)
                        size += len(chunk)
                    out.flush()
                    os.fsync(out.fileno())
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
                raise
        except OSError as exc:
            raise StorageError(
                f"could not write {dest}: {exc.strerror or exc}; check free space and permissions"
            ) from exc
        return tmp, size, digest.hexdigest()

    def place(self, tmp: Path, key: str, *, sync: bool = True) -> str:
        """Give a staged file its key (``key``, or ``key-N`` when taken: never overwriting),
        and return the key used. ``sync``: make the new name durable now; without it the
        caller fsyncs the directory (:func:`fsync_dir`) before it relies on the file, once
        for many files."""
        try:
            try:
                final_key = self._link_no_clobber(tmp, key)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
            if sync:
                fsync_dir(self.full_path(final_key).parent)
        except OSError as exc:
            raise StorageError(
                f"could not write {self.full_path(key)}: {exc.strerror or exc}; "
                "check free space and permissions"
            ) from exc
        return final_key

    def _link_no_clobber(self, tmp: Path, key: str) -> str:
        for candidate in candidate_keys(key):
            try:
                # link() refuses to replace an existing file, unlike rename().
                os.link(tmp, self.full_path(candidate))
            except FileExistsError:
                continue
            return candidate
        raise StorageError(f"no free name for {key} after 1000 tries; change the path template")

    def delete(self, key: str) -> bool:
        """Remove ``key`` (file or directory tree); False if it was not there."""
        path = self.full_path(key)
        try:
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise StorageError(f"could not delete {path}: {exc.strerror or exc}") from exc
        return True

    def iter_keys(self) -> Iterator[str]:
        """Every file under the root, as keys."""
        for path in self.root.rglob("*"):
            if path.is_file():
                yield path.relative_to(self.root).as_posix()


def fsync_dir(directory: Path) -> None:
    """Make a new entry of ``directory`` (a file created or renamed into it) durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
