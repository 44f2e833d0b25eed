"""Where a new product goes: its ``--dest``, or a key in a catalog storage profile."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from arcodex.convert._dest import dest_access, reach
from arcodex.convert._target import Target
from arcodex.errors import ValidationError

if TYPE_CHECKING:
    from arcodex.catalog import Catalog
    from arcodex.convert._product import ProductFormat
    from arcodex.convert._sources import SourceRef

__all__ = ["Placed", "containers", "place", "product_name"]

_EXT = {
    "zarr": ".zarr",
    "icechunk": ".icechunk",
    "virtual-icechunk": ".icechunk",
    "kerchunk": ".json",
    "kerchunk-parquet": ".parq",
}


@dataclass
class Placed:
    """Where a product is written, and how the catalog refers to it."""

    target: Target
    profile: str | None
    key: str | None
    managed: bool
    locator: Any = None
    dest_profile: str | None = None  # the profile whose credentials reach a --dest


def place(
    cat: Catalog | None,
    fmt: ProductFormat,
    dest: str | os.PathLike[str] | None,
    dest_options: Mapping[str, Any] | None,
    profile: str | None,
    key: str | None,
    refs: Sequence[SourceRef],
    dest_profile: str | None = None,
) -> Placed:
    if dest is not None:
        options, name = dest_access(cat, os.fspath(dest), dest_profile, dest_options)
        target = Target.of(dest, options)
        reach(target, name, cat, option="--dest-profile NAME")
        return Placed(target, None, None, False, dest_profile=name)
    if cat is None:
        raise ValidationError("say where the product goes: --dest PATH_OR_URL, or use a catalog")
    from arcodex.storage import LocalStore

    name = profile or cat.config.default_profile
    store = cat.storage(name)
    key = key or f"products/{product_name(refs)}{_EXT[fmt]}"
    if isinstance(store, LocalStore):
        return Placed(Target(str(store.full_path(key))), name, key, True, store.locator(key))
    return Placed(
        Target(store.url(key), dict(store.fs.storage_options)), name, key, True, store.locator(key)
    )


def product_name(refs: Sequence[SourceRef]) -> str:
    stems = [r.name.rsplit(".", 1)[0] for r in refs]
    prefix = stems[0] if stems else ""
    for stem in stems[1:]:
        while not stem.startswith(prefix):
            prefix = prefix[:-1]
    prefix = re.sub(r"[_\-.\d]+$", "", prefix)
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", prefix) or "product"


def containers(refs: Sequence[SourceRef]) -> tuple[str, ...]:
    """The virtual chunk container prefixes that cover the sources."""
    prefixes: set[str] = set()
    for ref in refs:
        if ref.is_local:
            # The top directory: updates may bring files from other directories below it.
            top = Path(ref.url).parts[1] if len(Path(ref.url).parts) > 2 else ""
            prefixes.add(f"file:///{top}/" if top else "file:///")
    for ref in refs:
        if not ref.is_local:
            protocol, rest = ref.url.split("://", 1)
            prefixes.add(f"{protocol}://{rest.split('/', 1)[0]}/")
    return tuple(sorted(prefixes))
