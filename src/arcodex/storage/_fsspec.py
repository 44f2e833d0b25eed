"""Managed storage on object stores and other fsspec filesystems (S3, memory).

An object appears only when its upload completes (one PUT, or a multipart
upload's final commit), and an upload that fails is discarded, so a reader
never sees a partial object. Credentials live in the filesystem object only:
never in a key, URL, locator, record or message.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from arcodex.errors import AuthError, StorageError
from arcodex.model import FsspecUrl
from arcodex.storage._local import candidate_keys

__all__ = ["FsspecStore"]

_CHUNK = 8 * 1024 * 1024


class FsspecStore:
    """Objects under ``base`` (``bucket/prefix``) of an fsspec filesystem."""

    def __init__(self, fs: Any, protocol: str, base: str, profile: str) -> None:
        self.fs = fs
        self.protocol = protocol
        self.base = base.strip("/")
        self.profile = profile

    def _path(self, key: str) -> str:
        return f"{self.base}/{key}" if self.base else key

    def url(self, key: str) -> str:
        """The URL of ``key`` (no credentials in it)."""
        return f"{self.protocol}://{self._path(key)}"

    def locator(self, key: str) -> FsspecUrl:
        """How a record points at ``key``: its URL and this profile's name."""
        return FsspecUrl(url=self.url(key), profile=self.profile)

    def key_of(self, url: str) -> str | None:
        """The key of a URL under this store, or None if it lies elsewhere."""
        head = f"{self.protocol}://{self.base}/" if self.base else f"{self.protocol}://"
        return url[len(head) :] if url.startswith(head) else None

    def write_file(self, source: Path, key: str) -> tuple[str, int, str]:
        with open(source, "rb") as fh:
            return self.write_stream(fh, key)

    def write_bytes(self, data: bytes, key: str) -> tuple[str, int, str]:
        return self.write_stream(io.BytesIO(data), key)

    def write_stream(self, stream: BinaryIO, key: str) -> tuple[str, int, str]:
        """Upload without overwriting; a taken key gets a ``-N`` suffix."""
        final = self._free_key(key)
        digest = hashlib.sha256()
        size = 0
        with self._errors("write", final):
            out = self.fs.open(self._path(final), "wb")
            try:
                while chunk := stream.read(_CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
            except BaseException:
                self._abandon(out, final)
                raise
            out.close()
        return final, size, digest.hexdigest()

    def _abandon(self, out: Any, key: str) -> None:
        """Throw away a failed upload. Closing it would commit what was sent so far, so
        it is discarded and marked closed; whatever a filesystem made visible early (the
        memory one does) is removed: the key was free when the upload began."""
        discard = getattr(out, "discard", None)
        with contextlib.suppress(Exception):
            if callable(discard):
                discard()
        with contextlib.suppress(Exception):
            out.closed = True
        with contextlib.suppress(Exception):
            if self.fs.exists(self._path(key)):
                self.fs.rm(self._path(key))

    def _free_key(self, key: str) -> str:
        with self._errors("list", key):
            for candidate in candidate_keys(key):
                if not self.fs.exists(self._path(candidate)):
                    return candidate
        raise StorageError(f"no free name for {key} after 1000 tries; change the path template")

    def exists(self, key: str) -> bool:
        with self._errors("read", key):
            return bool(self.fs.exists(self._path(key)))

    def delete(self, key: str) -> bool:
        """Remove ``key`` (an object or everything under it); False if it was not there."""
        path = self._path(key)
        with self._errors("delete", key):
            if not self.fs.exists(path):
                return False
            self.fs.rm(path, recursive=True)
        return True

    def iter_keys(self) -> Iterator[str]:
        """Every object under the base, as keys."""
        with self._errors("list", ""):
            found = self.fs.find(self.base) if self.base else self.fs.find("")
        head = f"{self.base}/" if self.base else ""
        for path in found:
            # Some filesystems (memory) root their paths at "/".
            path = path.lstrip("/")
            yield path[len(head) :] if path.startswith(head) else path

    def _errors(self, action: str, key: str) -> _Translate:
        return _Translate(self, action, key)


class _Translate:
    """Turns filesystem errors into one-line arcodex errors without credentials."""

    def __init__(self, store: FsspecStore, action: str, key: str) -> None:
        self.store, self.action, self.key = store, action, key

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        if exc is None or not isinstance(exc, Exception) or isinstance(exc, StorageError):
            return
        where = f"profile {self.store.profile!r} ({self.store.url(self.key)})"
        reason = _reason(exc)
        if isinstance(exc, PermissionError) or "AccessDenied" in reason or "Forbidden" in reason:
            raise AuthError(
                f"storage {where} refused to {self.action}: access denied; check the credentials "
                "the profile names (environment variables or credentials file)"
            ) from exc
        raise StorageError(
            f"could not {self.action} {where}: {reason}; check the endpoint, bucket and network"
        ) from exc


def _reason(exc: BaseException) -> str:
    # Only the error's class and first line: botocore messages hold no secrets, but
    # request dumps might, so nothing longer is passed on.
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"[:300]
