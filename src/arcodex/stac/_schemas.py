"""The offline cache of STAC extension JSON Schemas.

No package ships the extension schemas, and validation must not use the
network (CI, HPC login nodes, air-gapped sites). ``fetch_schemas`` downloads
them once — from stac-extensions.github.io, or from an institution's mirror —
into a cache directory whose layout mirrors the URL (``<cache>/<host>/<path>``),
and validation reads them from there and nowhere else.

The cache is, first found: the path a caller passes, ``$ARCODEX_STAC_SCHEMAS``,
else ``$XDG_CACHE_HOME/arcodex/stac-schemas`` (``~/.cache/arcodex/stac-schemas``).
A catalog can name its own with ``stac_schemas`` in ``arcodex.yaml`` (relative
to its root; ``$ARCODEX_STAC_SCHEMAS`` overrides it like any other key).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from arcodex.errors import PluginError, StorageError, ValidationError
from arcodex.stac._build import EXTENSIONS

if TYPE_CHECKING:
    from arcodex.catalog import Catalog

__all__ = [
    "ENV_SCHEMAS",
    "OFFICIAL_SCHEMAS",
    "CachedSchema",
    "cache_path",
    "cached_schemas",
    "catalog_schema_cache",
    "fetch_schemas",
    "load_cached",
    "schema_cache_dir",
]

#: The environment variable naming the cache directory.
ENV_SCHEMAS = "ARCODEX_STAC_SCHEMAS"
#: Where the extension schemas are published; ``--mirror`` replaces this prefix.
OFFICIAL_SCHEMAS = "https://stac-extensions.github.io/"

FETCH_HINT = 'run "arcodex stac schemas fetch"'


@dataclass(frozen=True)
class CachedSchema:
    """One extension schema: its URI, where the cache keeps it, and whether it is there."""

    uri: str
    path: Path
    cached: bool
    source: str | None = None  # the URL it was fetched from (fetch results only)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"uri": self.uri, "path": str(self.path), "cached": self.cached}
        if self.source is not None:
            data["source"] = self.source
        return data


def schema_cache_dir(path: str | os.PathLike[str] | None = None) -> Path:
    """The cache directory: ``path``, else ``$ARCODEX_STAC_SCHEMAS``, else the user cache."""
    if path:
        return Path(path).expanduser()
    configured = os.environ.get(ENV_SCHEMAS)
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "arcodex" / "stac-schemas"


def catalog_schema_cache(catalog: Catalog | None) -> Path:
    """The cache ``catalog`` uses: ``stac_schemas`` of its config (relative to its root), else
    :func:`schema_cache_dir`."""
    if catalog is None or not catalog.config.stac_schemas:
        return schema_cache_dir()
    return catalog.root / Path(catalog.config.stac_schemas).expanduser()


def cache_path(uri: str, cache: str | os.PathLike[str] | None = None) -> Path:
    """Where the cache keeps the schema ``uri``: ``<cache>/<host>/<path>``."""
    parts = urlsplit(uri)
    segments = PurePosixPath(parts.path).parts[1:]
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or "@" in parts.netloc
        or parts.query
        or not segments
        or parts.path.endswith("/")
        or any(s in (".", "..") or "\\" in s for s in segments)
    ):
        raise ValidationError(
            f"{uri!r} is not a schema URL (https://host/path/schema.json); fix the URI"
        )
    return schema_cache_dir(cache) / parts.netloc.lower() / Path(*segments)


def load_cached(uri: str, cache: str | os.PathLike[str] | None = None) -> dict[str, Any] | None:
    """The cached schema ``uri``, or None if it is not in the cache."""
    path = cache_path(uri, cache)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StorageError(f"cannot read the cached schema {path}: {exc}") from exc
    try:
        schema = json.loads(text)
    except ValueError:
        schema = None
    if not isinstance(schema, dict):
        raise ValidationError(
            f"the cached schema {path} is not a JSON object; delete it and {FETCH_HINT}"
        )
    return schema


def cached_schemas(
    uris: Iterable[str] = (), *, cache: str | os.PathLike[str] | None = None
) -> list[CachedSchema]:
    """arcodex's extensions, ``uris`` and every other schema in the cache, each with its state."""
    root = schema_cache_dir(cache)
    out = {uri: CachedSchema(uri, path, path.is_file()) for uri, path in _paths(uris, root)}
    if root.is_dir():
        for path in sorted(root.rglob("*.json")):
            # Temporary files of a fetch in progress are hidden; they are not schemas yet.
            uri = "https://" + path.relative_to(root).as_posix()
            if uri not in out and path.is_file() and not path.name.startswith("."):
                out[uri] = CachedSchema(uri, path, True)
    return list(out.values())


def _paths(uris: Iterable[str], root: Path) -> list[tuple[str, Path]]:
    """arcodex's extensions and ``uris``, once each, with their places in the cache."""
    return [(uri, cache_path(uri, root)) for uri in dict.fromkeys([*EXTENSIONS.values(), *uris])]


def fetch_schemas(
    extra: Iterable[str] = (),
    *,
    cache: str | os.PathLike[str] | None = None,
    mirror: str | None = None,
    timeout: float = 30.0,
) -> list[CachedSchema]:
    """Download the schemas of arcodex's extensions and of ``extra`` into the cache.

    Args:
        extra: more schema URIs to cache (other extensions, schemas they refer to).
        cache: the cache directory (default: see :func:`schema_cache_dir`).
        mirror: a URL replacing ``https://stac-extensions.github.io/``.
        timeout: seconds per request.

    Every schema is downloaded and checked (JSON, a Draft 7 schema, the ``$id``
    asked for) before any is written; one failure writes nothing. Each file is
    written to a temporary name and renamed, so no reader sees half a schema.

    Raises:
        StorageError: a schema could not be downloaded, was not the schema asked for
            (an error page, another version), or could not be written.
        ValidationError: a URI or the mirror is not an http(s) URL.
    """
    try:
        import httpx
    except ImportError as exc:
        raise PluginError(
            "fetching schemas needs httpx; install it with pip install httpx "
            "(or pip install 'arcodex[server]')"
        ) from exc

    root = schema_cache_dir(cache)
    targets = dict(_paths(extra, root))
    base = _mirror(mirror)
    downloads: list[tuple[str, str, bytes]] = []
    failures: list[str] = []
    with httpx.Client(timeout=timeout, follow_redirects=True) as client:
        for uri in targets:
            url = base + uri[len(OFFICIAL_SCHEMAS) :] if uri.startswith(OFFICIAL_SCHEMAS) else uri
            try:
                response = client.get(url)
                response.raise_for_status()
                _check(uri, url, response.content)
            except httpx.HTTPStatusError as exc:
                failures.append(f"{url}: HTTP {exc.response.status_code}")
            except httpx.HTTPError as exc:
                failures.append(f"{url}: {str(exc) or type(exc).__name__}")
                break  # the server is unreachable: the other schemas would only time out too
            except ValidationError as exc:
                failures.append(str(exc))
            else:
                downloads.append((uri, url, response.content))
    if failures:
        where = "check --mirror" if mirror else "check the network, or use --mirror"
        more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        raise StorageError(
            f"cannot fetch {failures[0]}{more}; nothing was written to {root}; "
            f"{where} and run again"
        )
    out = []
    for uri, url, content in downloads:
        _write_atomically(targets[uri], content)
        out.append(CachedSchema(uri, targets[uri], True, source=url))
    return out


def _mirror(mirror: str | None) -> str:
    if not mirror:
        return OFFICIAL_SCHEMAS
    parts = urlsplit(mirror)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
        raise ValidationError(
            f"--mirror {mirror!r} is not an http(s) URL; pass e.g. http://host/stac-extensions/"
        )
    return mirror.rstrip("/") + "/"


def _check(uri: str, url: str, content: bytes) -> None:
    """Refuse what is not the JSON Schema ``uri`` (an error page, another version)."""
    from jsonschema import Draft7Validator
    from jsonschema.exceptions import SchemaError

    try:
        schema = json.loads(content)
    except ValueError:
        schema = None
    if not isinstance(schema, dict):
        raise ValidationError(f"{url} did not return a JSON object")
    if "$schema" not in schema and "$id" not in schema:
        raise ValidationError(f"{url} returned JSON that is not a JSON Schema (no $schema or $id)")
    declared = schema.get("$id")
    if declared is not None and str(declared).rstrip("#") != uri:
        raise ValidationError(f"{url} returned the schema {declared}, not {uri}")
    try:
        Draft7Validator.check_schema(schema)
    except SchemaError as exc:
        raise ValidationError(f"{url} is not a valid Draft 7 schema: {exc.message}") from None


def _write_atomically(path: Path, content: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(content)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temp, path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise StorageError(
            f"cannot write {path}: {exc}; set {ENV_SCHEMAS} to a writable directory"
        ) from exc
