"""The Catalog service: the one Python API the CLI and the server call.

:class:`Catalog` is made of parts, one module each, all built on the reading and
writing core (:mod:`._reading`, :mod:`._writing`):

- adding (:mod:`._adding`): files, bytes, external URIs, prepared records;
- ingesting (:mod:`._ingest`): many files in resumable batches;
- changing (:mod:`._changing`): update, delete, restore, purge;
- publishing (:mod:`._publishing`): publish, unpublish, set_visibility;
- health (:mod:`._health`, the work in :mod:`._doctor`): doctor, recover;
- schemas (:mod:`._validation`): register, list, validate;
- pipelines (:mod:`._running`, steps in :mod:`._pipeline`): list and run them by name.

This module opens and creates catalogs, and finds the one a command means.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from arcodex.backends import open_backend
from arcodex.catalog._adding import Adding
from arcodex.catalog._changing import Changing
from arcodex.catalog._config import CONFIG_FILE, CatalogConfig, load_config
from arcodex.catalog._health import Health
from arcodex.catalog._ingest import Ingesting
from arcodex.catalog._publishing import Publishing
from arcodex.catalog._reading import STATE_DIR, CatalogInfo
from arcodex.catalog._running import Running
from arcodex.catalog._validation import Validation
from arcodex.errors import CatalogExistsError, NotACatalogError, StorageError, ValidationError

if TYPE_CHECKING:
    from arcodex.catalog._users import Users

__all__ = ["ENV_CATALOG", "Catalog", "CatalogInfo", "find_catalog_root", "open_catalog"]

DB_FILE = "catalog.sqlite"
ENV_CATALOG = "ARCODEX_CATALOG"


def find_catalog_root(start: str | os.PathLike[str] | None = None) -> Path:
    """The catalog a command means: ``start`` if given, else ``$ARCODEX_CATALOG``,
    else the nearest directory upwards from the current one holding ``arcodex.yaml``."""
    if start is not None:
        return Path(start).expanduser().resolve()
    env = os.environ.get(ENV_CATALOG)
    if env:
        return Path(env).expanduser().resolve()
    here = Path.cwd().resolve()
    for directory in (here, *here.parents):
        if (directory / CONFIG_FILE).is_file():
            return directory
    raise NotACatalogError(
        f"no arcodex catalog in {here} or above; run `arcodex init PATH`, "
        f"pass --catalog PATH or set {ENV_CATALOG}"
    )


def open_catalog(path_or_url: str | os.PathLike[str] | None = None) -> Catalog:
    """Open an existing catalog: a directory, or None to search as the CLI does."""
    root = find_catalog_root(path_or_url)
    env = os.environ.get(ENV_CATALOG)
    if path_or_url is None and env and not (root / CONFIG_FILE).is_file():
        raise NotACatalogError(
            f"${ENV_CATALOG}={env} is not an arcodex catalog ({_not_a_catalog(root)}); "
            f"unset it, point it at a catalog, or run `arcodex init {env}` to make one there"
        )
    return Catalog.open(root)


def _not_a_catalog(root: Path) -> str:
    """Why ``root`` (which has no arcodex.yaml) is not a catalog."""
    if not root.exists():
        return "no such directory"
    if not root.is_dir():
        return "a file, not a directory"
    return f"no {CONFIG_FILE} in it"


class Catalog(Adding, Ingesting, Publishing, Changing, Health, Validation, Running):
    """One arcodex catalog: records in a backend, managed files in storage profiles.

    Open one with :func:`open_catalog` or create one with :meth:`create`.
    """

    @property
    def users(self) -> Users:
        """The users and API tokens of the server (:class:`~arcodex.catalog._users.Users`)."""
        from arcodex.catalog._users import Users

        return Users(self.backend, self.events)

    # -- lifecycle -----------------------------------------------------------

    @classmethod
    def create(
        cls, path: str | os.PathLike[str], *, config: CatalogConfig | None = None
    ) -> Catalog:
        """Make a new catalog in ``path`` (created if missing); refuses an existing catalog."""
        root = Path(path).expanduser().resolve()
        if (root / CONFIG_FILE).exists():
            raise CatalogExistsError(
                f"{root} already holds an arcodex catalog; open it, or choose another directory"
            )
        if root.exists() and not root.is_dir():
            raise ValidationError(f"{root} is a file, not a directory; choose a directory path")
        config = config or CatalogConfig()
        created_root = not root.exists()
        try:
            root.mkdir(parents=True, exist_ok=True)
            (root / STATE_DIR).mkdir(exist_ok=True)
            backend = open_backend(cls._database_url(root, config), create=True, config=config)
            # Written last: a directory is a catalog only once everything else exists.
            tmp = root / f".{CONFIG_FILE}.tmp"
            tmp.write_text(config.to_yaml(), encoding="utf-8")
            os.replace(tmp, root / CONFIG_FILE)
        except OSError as exc:
            if created_root:
                shutil.rmtree(root, ignore_errors=True)
            raise StorageError(
                f"could not create a catalog in {root}: {exc.strerror or exc}"
            ) from exc
        return cls(root, config, backend)

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Catalog:
        """Open the catalog in directory ``path``."""
        root = Path(path).expanduser().resolve()
        if not (root / CONFIG_FILE).is_file():
            raise NotACatalogError(
                f"{root} is not an arcodex catalog ({_not_a_catalog(root)}); "
                f"run `arcodex init {root}` to make one, or pass the right --catalog"
            )
        config = load_config(root)
        backend = open_backend(cls._database_url(root, config), create=False, config=config)
        return cls(root, config, backend)

    @staticmethod
    def _database_url(root: Path, config: CatalogConfig) -> str:
        return config.database_url or f"sqlite:///{root / DB_FILE}"

    def close(self) -> None:
        """Release the backend's connections (and the operation leases' one)."""
        try:
            self._operation_state.close()
        finally:
            self.backend.close()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Catalog({str(self.root)!r}, backend={self.backend.url!r})"

    def _repr_html_(self) -> str:
        from arcodex.catalog._catalog_html import catalog_html

        return catalog_html(self)
