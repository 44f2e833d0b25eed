"""What may be written where, and replacing a product without ever losing the old one.

``--overwrite`` replaces only a product arcodex recognises as its own (its
provenance marker, or the catalog's record of it); a destination that
equals, contains or lies inside a source is refused whatever the flags.

A new product is written beside the destination (a staging path or
prefix), checked there, and only then swapped in: the old product is moved
aside (a rename on local disks; on object stores, where nothing renames, a
copy that is marked complete before the original is removed), the new one
is moved in, and the old one is removed once the record is committed. Each
step is journaled, so ``arcodex recover`` can put the old product back or
finish the swap after a kill: at every moment a complete old product is
at the destination or marked complete beside it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from arcodex.convert._product import Product
from arcodex.convert._target import Target
from arcodex.errors import ConflictError, StorageError, ValidationError

if TYPE_CHECKING:
    from arcodex.catalog import Catalog
    from arcodex.catalog._journal import UnitOfWork
    from arcodex.convert._sources import SourceRef

__all__ = [
    "STAGING_MARK",
    "Staging",
    "arcodex_made",
    "guard_destination",
    "roll_back",
    "roll_forward",
    "what_is_at",
]

#: Part of the name of every staging and set-aside path arcodex makes beside a product.
STAGING_MARK = ".arcodex-"
_SAVED = ".saved"
_SECRETS = {"key", "secret", "token", "password", "aws_secret_access_key", "session_token"}


# -- what is there ------------------------------------------------------------------------


def what_is_at(target: Target) -> str:
    """A few words saying what is at ``target`` (for messages)."""
    if not target.exists():
        return "nothing"
    fs, path = target.fs()
    if not fs.isdir(path):
        # Only kerchunk references are products that are one file.
        product = _detect(target) if target.url.endswith(".json") else None
        return "a plain file" if product is None else _product_words(product)
    product = _detect(target)
    if product is None:
        return "a directory that is not an arcodex product"
    return _product_words(product)


def _product_words(product: Product) -> str:
    if _has_provenance(product):
        return f"an arcodex {product.format} product"
    return f"a {product.format} store not made by arcodex"


def _detect(target: Target) -> Product | None:
    try:
        return Product.detect(target.url, target.storage_options)
    except Exception:  # anything unreadable is simply not a product
        return None


def _has_provenance(product: Product) -> bool:
    try:
        return bool(product.provenance())
    except Exception:
        return False


def arcodex_made(target: Target, cat: Catalog | None = None) -> bool:
    """Whether ``target`` holds a product arcodex wrote: its provenance marker, or a
    catalog record whose product is there."""
    product = _detect(target)
    if product is not None and _has_provenance(product):
        return True
    if cat is None:
        return False
    found = cat.search(kind="dataset", **{"convert.product.url": target.url})  # type: ignore[arg-type]
    return bool(list(found.records))


def guard_destination(
    target: Target,
    refs: Sequence[SourceRef],
    *,
    overwrite: bool,
    cat: Catalog | None = None,
) -> bool:
    """Refuse a destination that would destroy what arcodex did not make.

    Returns:
        Whether a product (of arcodex's) is there to be replaced.

    Raises:
        ValidationError: the destination equals, contains or lies inside a source.
        ConflictError: something is there and may not (or was not asked to) be replaced.
    """
    for ref in refs:
        if _overlaps(target.url, ref.url):
            raise ValidationError(
                f"the destination {target.url} is or holds the source {ref.url}; "
                "write the product somewhere else"
            )
    if not target.exists():
        return False
    there = what_is_at(target)
    if not overwrite:
        raise ConflictError(
            f"{there} already exists at {target.url}; "
            + (
                "run `arcodex update` to add sources, or pass --overwrite to replace it"
                if there.startswith("an arcodex")
                else "choose another destination"
            )
        )
    if not arcodex_made(target, cat):
        raise ConflictError(
            f"--overwrite replaces only arcodex products, and {target.url} is {there}; "
            "remove it yourself or choose another destination"
        )
    return True


def _overlaps(dest: str, source: str) -> bool:
    """Whether ``dest`` equals ``source``, holds it, or lies inside it."""
    if ("://" in dest) != ("://" in source):
        return False
    if "://" not in dest:
        a, b = os.path.realpath(dest), os.path.realpath(source)
        return a == b or _inside(a, b) or _inside(b, a)
    a, b = dest.rstrip("/"), source.rstrip("/")
    return a == b or b.startswith(a + "/") or a.startswith(b + "/")


def _inside(child: str, parent: str) -> bool:
    return child.startswith(parent.rstrip(os.sep) + os.sep)


# -- staging and the swap -------------------------------------------------------------------


@dataclass
class Staging:
    """Where a new product is written, and how it replaces what is at its destination."""

    final: Target
    work: Target
    backup: Target | None
    existed: bool

    @classmethod
    def beside(cls, final: Target, *, existed: bool) -> Staging:
        """Staging beside ``final``. A new remote product is written in place (nothing to
        keep, and object stores would have to copy it again)."""
        token = uuid.uuid4().hex[:12]
        staged = final.is_local or existed
        work = _sibling(final, f"staging-{token}") if staged else final
        backup = _sibling(final, f"old-{token}") if existed else None
        return cls(final, work, backup, existed)

    def journal(self, uow: UnitOfWork | None, profile: str | None = None) -> None:
        """Journal the staging (and register its undo) before anything is written."""
        if uow is None:
            return
        uow.on_rollback(f"put {self.final.url} back as it was", self.roll_back, url=self.final.url)
        uow.transition(
            "artifact_staged",
            url=self.final.url,
            staging=self.work.url,
            **({"profile": profile} if profile else {}),
            recover="arcodex.convert._replace:roll_back",
            forward="arcodex.convert._replace:roll_forward",
            args=self.recovery(),
        )

    def recovery(self) -> dict[str, Any]:
        """What :func:`roll_back` and :func:`roll_forward` need, as JSON, without secrets."""
        return {
            "final": self.final.url,
            "work": self.work.url,
            "backup": self.backup.url if self.backup else None,
            "existed": self.existed,
            "options": public_options(self.final.storage_options),
        }

    def swap(self, uow: UnitOfWork | None = None) -> None:
        """Move the old product aside and the new one in (the old one stays until ``finish``)."""
        if self.work.url == self.final.url:
            return
        fs, _ = self.final.fs()
        _fresh(fs)
        if self.existed and self.backup is not None:
            _move(self.final, self.backup, fs)
            _mark(self.backup, fs)
            if uow is not None:
                uow.transition("artifact_set_aside", url=self.final.url, backup=self.backup.url)
        _move(self.work, self.final, fs)
        if uow is not None:
            uow.transition("artifact_swapped", url=self.final.url)

    def roll_back(self) -> None:
        """Put back what was at the destination (idempotent)."""
        roll_back(**self.recovery(), storage_options=self.final.storage_options)

    def finish(self) -> None:
        """Drop the old product and any staging left (once the new product is kept)."""
        roll_forward(**self.recovery(), storage_options=self.final.storage_options)


def roll_back(
    final: str,
    work: str,
    backup: str | None,
    existed: bool,
    options: Mapping[str, Any] | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> None:
    """Undo a replacement: the old product back at ``final``, no staging left (also run by
    ``arcodex recover``, with credentials from the environment)."""
    dest = Target.of(final, storage_options or options or {})
    fs, _ = dest.fs()
    _fresh(fs)
    old = _target(backup, dest) if backup else None
    if old is not None and _is_marked(old, fs):
        _remove(dest, fs)
        _move(old, dest, fs)
        _unmark(old, fs)
    else:
        if old is not None:
            _remove(old, fs)
            _unmark(old, fs)
        if not existed:
            _remove(dest, fs)
    if work != final:
        _remove(_target(work, dest), fs)


def roll_forward(
    final: str,
    work: str,
    backup: str | None,
    existed: bool,
    options: Mapping[str, Any] | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> None:
    """Finish a replacement whose record is committed: drop the old product and staging."""
    dest = Target.of(final, storage_options or options or {})
    fs, _ = dest.fs()
    _fresh(fs)
    if backup:
        old = _target(backup, dest)
        _remove(old, fs)
        _unmark(old, fs)
    if work != final:
        _remove(_target(work, dest), fs)


def public_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Storage options without their secrets (nesting kept), fit for a journal."""
    out: dict[str, Any] = {}
    for key, value in options.items():
        if str(key) in _SECRETS:
            continue
        out[str(key)] = public_options(value) if isinstance(value, Mapping) else value
    return out


def is_staging_name(name: str) -> bool:
    """Whether a file or object name is one of arcodex's staging or set-aside paths."""
    return STAGING_MARK in name and ("staging-" in name or "old-" in name)


def _sibling(target: Target, what: str) -> Target:
    head, _, name = target.url.rpartition("/")
    suffix = PurePosixPath(name).suffix
    stem = name[: -len(suffix)] if suffix else name
    return Target(f"{head}/.{stem}{STAGING_MARK}{what}{suffix}", target.storage_options)


def _target(url: str, like: Target) -> Target:
    return Target(url, like.storage_options)


def _path(target: Target) -> str:
    if target.is_local:
        return target.url
    return target.url.split("://", 1)[1]


def _fresh(fs: Any) -> None:
    # Other clients (zarr's store, Icechunk, the workers) wrote meanwhile: no stale listings.
    invalidate = getattr(fs, "invalidate_cache", None)
    if callable(invalidate):
        invalidate()


def _exists(target: Target, fs: Any) -> bool:
    if target.is_local:
        return os.path.lexists(target.url)
    return bool(fs.exists(_path(target)))


def _move(src: Target, dst: Target, fs: Any) -> None:
    if not _exists(src, fs):
        return
    try:
        if src.is_local:
            os.replace(src.url, dst.url)
            return
        path = _path(src)
        recursive = bool(fs.isdir(path))
        fs.copy(path, _path(dst), recursive=recursive)
        _fresh(fs)
        fs.rm(path, recursive=recursive)
        _fresh(fs)
    except OSError as exc:
        raise StorageError(f"could not move {src.url} to {dst.url}: {exc}") from exc


def _remove(target: Target, fs: Any) -> None:
    import shutil

    try:
        if target.is_local:
            if os.path.isdir(target.url) and not os.path.islink(target.url):
                shutil.rmtree(target.url)
            elif os.path.lexists(target.url):
                os.unlink(target.url)
            return
        path = _path(target)
        if fs.exists(path):
            fs.rm(path, recursive=True)
            _fresh(fs)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StorageError(f"could not remove {target.url}: {exc}") from exc


def _mark(target: Target, fs: Any) -> None:
    """Record that ``target`` (a set-aside product) is complete."""
    mark = _target(target.url + _SAVED, target)
    if mark.is_local:
        with open(mark.url, "wb") as fh:
            fh.write(b"complete\n")
            fh.flush()
            os.fsync(fh.fileno())
        return
    fs.pipe_file(_path(mark), b"complete\n")


def _is_marked(target: Target, fs: Any) -> bool:
    if target.is_local:
        # A rename is atomic: a product set aside locally is whole as soon as it is there.
        return os.path.lexists(target.url)
    return _exists(_target(target.url + _SAVED, target), fs)


def _unmark(target: Target, fs: Any) -> None:
    _remove(_target(target.url + _SAVED, target), fs)
