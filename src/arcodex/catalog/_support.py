"""Small pieces the Catalog service shares: metadata edits, input checks, messages."""

from __future__ import annotations

import getpass
import os
from collections.abc import Mapping
from contextlib import suppress
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from arcodex.backends import CatalogBackend
from arcodex.catalog._config import CatalogConfig
from arcodex.catalog._journal import UnitOfWork
from arcodex.catalog._schemas import parse_schema_ref
from arcodex.errors import NotFoundError, StorageError, ValidationError
from arcodex.extract import Extracted
from arcodex.model import check_metadata
from arcodex.storage import FsspecStore, LocalStore, S3ProfileConfig, hash_file

__all__ = [
    "bare",
    "check_readable",
    "check_uri",
    "current_user",
    "dir_size",
    "exists",
    "file_hash",
    "merge",
    "metadata_of",
    "profile_secrets",
    "pydantic_message",
    "schema_parts",
    "set_path",
    "undo_write",
    "unset_path",
]


def current_user() -> str:
    with suppress(Exception):
        return os.environ.get("ARCODEX_USER") or getpass.getuser()
    return "unknown"


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
    parts = dotted.split(".")
    node = metadata
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


def profile_secrets(config: CatalogConfig) -> list[str]:
    """Credential values the catalog's profiles may use, to keep them out of the log."""
    import configparser

    found: list[str] = []
    for profile in config.profiles.values():
        if not isinstance(profile, S3ProfileConfig):
            continue
        for name in (profile.key_env, profile.secret_env, profile.token_env):
            value = os.environ.get(name)
            if value:
                found.append(value)
        if profile.credentials_file:
            parser = configparser.ConfigParser()
            with suppress(OSError, configparser.Error):
                parser.read(Path(profile.credentials_file).expanduser())
                for section in parser.sections():
                    found.extend(v for k, v in parser[section].items() if k.startswith("aws_"))
    return found


def schema_parts(ref: str) -> tuple[str, str | None]:
    """``name@version`` or a bare ``name`` (meaning its latest version)."""
    if "@" in ref:
        return parse_schema_ref(ref)
    parse_schema_ref(f"{ref}@1")  # checks the name
    return ref, None


def undo_write(uow: UnitOfWork, store: LocalStore | FsspecStore, key: str, profile: str) -> None:
    """Journal an object this unit created and register its removal."""
    uow.on_rollback(f"delete {key} from profile {profile}", lambda: store.delete(key), key=key)
    uow.transition("artifact_written", profile=profile, key=key)


def exists(backend: CatalogBackend, record_id: str) -> bool:
    try:
        backend.get(record_id)
    except NotFoundError:
        return False
    return True


def metadata_of(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    """User metadata as plain JSON, or a ValidationError naming what is wrong."""
    try:
        result: dict[str, Any] = check_metadata(dict(metadata or {}))
    except ValueError as exc:
        raise ValidationError(f"bad metadata: {exc}") from None
    return result


def check_uri(uri: str) -> None:
    parts = urlsplit(uri)
    if not parts.scheme or not (parts.netloc or parts.path) or any(c.isspace() for c in uri):
        raise ValidationError(
            f"{uri!r} is not a URI; give one like https://host/path or doi:10.1000/x"
        )
    if parts.password:
        raise ValidationError(
            "the URI carries a password; put credentials in a storage profile, not the URI"
        )


def check_readable(path: Path, *, in_place: bool = False) -> None:
    if not path.exists():
        raise NotFoundError(f"{path} does not exist; check the path")
    if path.is_dir():
        if in_place:
            return
        raise ValidationError(
            f"{path} is a directory; add the files in it (e.g. {path}/*.nc), or register "
            "the whole directory (a Zarr store, say) where it is with --in-place"
        )
    try:
        with open(path, "rb") as fh:
            fh.read(1)
    except OSError as exc:
        raise StorageError(
            f"cannot read {path}: {exc.strerror or exc}; check its permissions"
        ) from exc


def dir_size(path: Path) -> tuple[int, str]:
    """Total size of a directory tree; directories carry no single hash."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()), ""


def file_hash(path: Path) -> tuple[int, str]:
    try:
        return hash_file(path)
    except OSError as exc:
        raise StorageError(f"cannot read {path}: {exc.strerror or exc}") from exc


def bare(path: Path) -> Extracted:
    from arcodex.extract import FileExtractor

    found = Extracted()
    FileExtractor().extract(path, found)
    return found


def pydantic_message(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        with suppress(Exception):
            first = errors()[0]
            loc = ".".join(str(p) for p in first.get("loc", ()))
            msg = str(first.get("msg", exc)).removeprefix("Value error, ")
            return f"{loc}: {msg}" if loc else msg
    return str(exc)
