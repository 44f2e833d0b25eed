"""Where a product lives: a local path or an object-store URL, and how to open it.

Credentials come from the storage options of a profile (in memory only);
:meth:`Target.describe` is what may be stored or logged: the URL and the
non-secret options.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arcodex.errors import StorageError, ValidationError

__all__ = ["Target", "container_credentials", "s3_settings"]


@dataclass(frozen=True)
class Target:
    """A product's location."""

    url: str
    storage_options: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def of(
        cls, dest: str | os.PathLike[str], storage_options: Mapping[str, Any] | None = None
    ) -> Target:
        text = os.fspath(dest)
        if "://" in text and not text.startswith("file://"):
            return cls(text.rstrip("/"), dict(storage_options or {}))
        path = Path(text.removeprefix("file://")).expanduser().resolve()
        return cls(str(path))

    @property
    def is_local(self) -> bool:
        return "://" not in self.url

    @property
    def protocol(self) -> str:
        return self.url.split("://", 1)[0] if not self.is_local else "file"

    def describe(self) -> dict[str, Any]:
        from arcodex.storage._access import without_secrets

        # Nested as given (s3fs form): flattening put ``region_name`` where s3fs rejects it.
        options = without_secrets(self.storage_options)
        return {"url": self.url, **({"options": options} if options else {})}

    # -- filesystem view -------------------------------------------------------------

    def fs(self) -> tuple[Any, str]:
        import fsspec

        if self.is_local:
            return fsspec.filesystem("file"), self.url
        fs, path = fsspec.core.url_to_fs(self.url, **dict(self.storage_options))
        return fs, path

    def exists(self) -> bool:
        if self.is_local:
            return Path(self.url).exists()
        fs, path = self.fs()
        try:
            return bool(fs.exists(path))
        except OSError as exc:
            raise StorageError(f"cannot reach {self.url}: {exc}") from exc

    def remove(self) -> None:
        """Delete the product (a tree of objects); nothing happens if it is not there."""
        import shutil

        if self.is_local:
            path = Path(self.url)
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            elif path.exists():
                path.unlink()
            return
        fs, where = self.fs()
        try:
            if fs.exists(where):
                fs.rm(where, recursive=True)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StorageError(f"could not remove {self.url}: {exc}") from exc

    def child(self, name: str) -> Target:
        return Target(f"{self.url}/{name}", self.storage_options)

    # -- zarr and icechunk -------------------------------------------------------------

    def zarr_store(self, *, read_only: bool = False) -> Any:
        import zarr.storage

        if self.is_local:
            return zarr.storage.LocalStore(self.url, read_only=read_only)
        return zarr.storage.FsspecStore.from_url(
            self.url, storage_options=dict(self.storage_options), read_only=read_only
        )

    def icechunk_storage(self) -> Any:
        import icechunk

        if self.is_local:
            return icechunk.local_filesystem_storage(self.url)
        if self.protocol != "s3":
            raise ValidationError(
                f"Icechunk products live on local disks or S3, not {self.protocol}://"
            )
        bucket, _, prefix = self.url.removeprefix("s3://").partition("/")
        return icechunk.s3_storage(
            bucket=bucket, prefix=prefix or None, **s3_settings(self.storage_options)
        )


def container_credentials(prefixes: Sequence[str], options: Mapping[str, Any]) -> Any:
    """Icechunk's authorisation of virtual chunk containers (None when there are none).

    Local and HTTP containers need no secret; S3 ones use the key in ``options``
    (s3fs storage options), else the environment.
    """
    if not prefixes:
        return None
    import icechunk

    settings = s3_settings(options)
    creds: dict[str, Any] = {}
    for prefix in prefixes:
        if prefix.startswith("file://"):
            creds[prefix] = icechunk.credentials.LocalFileSystemAccess
        elif prefix.startswith(("http://", "https://")):
            creds[prefix] = icechunk.credentials.HttpAccess
        elif prefix.startswith("s3://"):
            if settings.get("anonymous"):
                creds[prefix] = icechunk.s3_credentials(anonymous=True)
            elif settings.get("access_key_id"):
                creds[prefix] = icechunk.s3_credentials(
                    access_key_id=settings["access_key_id"],
                    secret_access_key=settings["secret_access_key"],
                    session_token=settings.get("session_token"),
                )
            else:
                creds[prefix] = icechunk.s3_credentials(from_env=True)
        else:
            creds[prefix] = None
    return icechunk.containers_credentials(creds)


def s3_settings(options: Mapping[str, Any]) -> dict[str, Any]:
    """Icechunk's S3 keyword arguments from s3fs storage options."""
    flat = _flat(options)
    endpoint = flat.get("endpoint_url")
    settings: dict[str, Any] = {
        "endpoint_url": endpoint,
        "region": flat.get("region_name") or ("us-east-1" if endpoint else None),
        "allow_http": bool(endpoint and str(endpoint).startswith("http://")),
        "force_path_style": flat.get("addressing_style") == "path" or bool(endpoint),
    }
    if flat.get("anon"):
        settings["anonymous"] = True
    elif flat.get("key"):
        settings["access_key_id"] = flat["key"]
        settings["secret_access_key"] = flat.get("secret")
        if flat.get("token"):
            settings["session_token"] = flat["token"]
    else:
        settings["from_env"] = True
    return settings


def _flat(options: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in options.items():
        if isinstance(value, Mapping):
            out.update(_flat(value))
        else:
            out[str(key)] = value
    return out
