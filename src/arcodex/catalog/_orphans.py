"""Orphans: objects no record points at, and the proof that arcodex wrote them.

``doctor`` lists every unreferenced object of the catalog's profiles, and the
leftovers of finished operations outside them (a product at a ``--dest``, a
staging path or a set-aside old product). Only an object that a journal
(open or finished) names as written by arcodex, or that lies in a product
carrying arcodex's provenance marker, is *proven*; ``doctor --fix`` removes
proven orphans and nothing else, a whole product at a time.
"""

from __future__ import annotations

import importlib
import os
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from arcodex.storage import FsspecStore, LocalStore

if TYPE_CHECKING:
    from arcodex.catalog._writing import CatalogWriter

__all__ = [
    "Fix",
    "JournalProof",
    "fix_orphans",
    "journal_proof",
    "leftovers",
    "made_by_arcodex",
    "proof_of",
    "remove_url",
]

#: Names whose directory (or file) is a whole product: it is removed as one.
_PRODUCT_SUFFIXES = (".zarr", ".icechunk", ".parq", ".json")
_STAGING_MARK = ".arcodex-"


@dataclass
class JournalProof:
    """What every journal of the catalog says arcodex wrote."""

    keys: set[tuple[str, str]] = field(default_factory=set)  # (profile, key)
    urls: dict[str, dict[str, Any]] = field(default_factory=dict)  # url -> {operation, options}


@dataclass
class Fix:
    """What ``doctor --fix`` removed (or, with ``dry_run``, would remove) and what it kept."""

    dry_run: bool
    would_remove: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    kept: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "would_remove": self.would_remove,
            "removed": self.removed,
            "kept": self.kept,
        }


def journal_proof(catalog: CatalogWriter, *, finished: bool = True) -> JournalProof:
    """Every object journaled as written, by open (and ``finished``) operations."""
    proof = JournalProof()
    ops = catalog.journal.open_operations()
    if finished:
        ops = [*ops, *catalog.journal.done_operations()]
    for op_id in ops:
        entries = catalog.journal.read(op_id)
        last = str(entries[-1].get("state")) if entries else ""
        for entry in entries:
            _note(proof, entry, {"operation_id": op_id, "last_state": last})
    return proof


def _note(proof: JournalProof, entry: Mapping[str, Any], op: dict[str, Any]) -> None:
    state = entry.get("state")
    if state == "artifact_written":
        if entry.get("profile") is not None and entry.get("key") is not None:
            proof.keys.add((str(entry["profile"]), str(entry["key"])))
        elif entry.get("url"):
            proof.urls[str(entry["url"])] = {**op, "options": {}}
    elif state == "artifact_staged":
        args = dict(entry.get("args") or {})
        options = dict(args.get("options") or {})
        # The destination itself only when it was new: else it held an older product.
        urls = [
            args.get("work"),
            args.get("backup"),
            None if args.get("existed") else args.get("final"),
        ]
        if args.get("backup"):
            urls.append(f"{args['backup']}.saved")
        for url in urls:
            if url:
                proof.urls[str(url)] = {**op, "options": options}
    elif state == "planned":
        for item in entry.get("remove") or []:
            if item.get("profile") is not None and item.get("key") is not None:
                proof.keys.add((str(item["profile"]), str(item["key"])))
            elif item.get("path"):
                proof.urls[str(item["path"])] = {**op, "options": {}}


def proof_of(
    profile: str,
    store: LocalStore | FsspecStore,
    key: str,
    journaled: JournalProof,
    made: dict[str, bool] | None,
) -> tuple[str | None, str]:
    """Why an orphaned ``key`` is known to be arcodex's (``journal``, or ``provenance``
    unless ``made`` is None; else None) and the key of the whole it belongs to (removed
    together). ``made`` caches the provenance of the products looked at."""
    parts = key.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    for prefix in prefixes:
        if (profile, prefix) in journaled.keys or _url_of(store, prefix) in journaled.urls:
            return "journal", prefix
    if made is None:
        return None, key
    for prefix in prefixes:
        name = prefix.rsplit("/", 1)[-1]
        if not (name.endswith(_PRODUCT_SUFFIXES) or _STAGING_MARK in name):
            continue
        url = _url_of(store, prefix)
        if url not in made:
            made[url] = made_by_arcodex(url, _options_of(store))
        if made[url]:
            return "provenance", prefix
    return None, key


def leftovers(catalog: CatalogWriter, journaled: JournalProof) -> list[dict[str, Any]]:
    """Objects journaled by finished operations outside every profile that are still there
    (a product at a ``--dest``, a staging path, an old product set aside)."""
    inside = [_url_of(catalog.storage(n), "") for n in catalog.config.profiles]
    done = set(catalog.journal.done_operations())
    found = []
    for url, info in sorted(journaled.urls.items()):
        if info["operation_id"] not in done or any(url.startswith(p) for p in inside if p):
            continue
        if not _is_leftover(url, info["last_state"], catalog):
            continue
        try:
            there = _exists(url, info["options"])
        except Exception:  # an unreachable store is no reason to stop looking
            continue
        if there:
            found.append({"url": url, "operation_id": info["operation_id"], "proof": "journal"})
    return found


def _is_leftover(url: str, last_state: str, catalog: CatalogWriter) -> bool:
    """A staging or set-aside path is always a leftover; a product only if the operation
    that wrote it did not commit and no record has it."""
    name = url.rstrip("/").rsplit("/", 1)[-1]
    if _STAGING_MARK in name:
        return True
    if last_state == "committed":
        return False
    found = catalog.search(kind="dataset", **{"convert.product.url": url})  # type: ignore[arg-type]
    return not list(found.records)


def fix_orphans(
    catalog: CatalogWriter,
    orphaned_files: Iterable[Mapping[str, Any]],
    orphaned_products: Iterable[Mapping[str, Any]],
    *,
    dry_run: bool,
) -> Fix:
    """Remove the proven orphans, a whole product at a time; keep (and say why) the rest."""
    fix = Fix(dry_run=dry_run)
    wholes: dict[tuple[str, str], None] = {}
    for item in orphaned_files:
        where = f"{item['profile']}:{item['key']}"
        if not item.get("proof"):
            fix.kept.append({"where": where, "reason": "nothing proves arcodex wrote it"})
            continue
        wholes[(str(item["profile"]), str(item.get("root") or item["key"]))] = None
    for profile, key in wholes:
        where = f"{profile}:{key}"
        if dry_run:
            fix.would_remove.append(where)
            continue
        try:
            catalog.storage(profile).delete(key)
        except Exception as exc:
            fix.kept.append({"where": where, "reason": f"could not remove it: {exc}"})
            continue
        fix.removed.append(where)
    journaled = journal_proof(catalog)
    for item in orphaned_products:
        url = str(item["url"])
        if dry_run:
            fix.would_remove.append(url)
            continue
        try:
            remove_url(url, journaled.urls.get(url, {}).get("options") or {})
        except Exception as exc:
            fix.kept.append({"where": url, "reason": f"could not remove it: {exc}"})
            continue
        fix.removed.append(url)
    return fix


# -- places ----------------------------------------------------------------------------------


def _url_of(store: LocalStore | FsspecStore, key: str) -> str:
    if isinstance(store, LocalStore):
        return str((store.root / key).resolve()) if key else str(store.root.resolve()) + os.sep
    return store.url(key) if key else store.url("").rstrip("/") + "/"


def _options_of(store: LocalStore | FsspecStore) -> dict[str, Any]:
    fs = getattr(store, "fs", None)
    return dict(getattr(fs, "storage_options", {}) or {})


def made_by_arcodex(url: str, options: Mapping[str, Any]) -> bool:
    """Whether ``url`` holds a product with arcodex's provenance marker.

    Reading the marker takes the conversion engine; it is loaded only here, by name,
    so that the catalog does not depend on it (without it nothing is proven).
    """
    try:
        replace = importlib.import_module("arcodex.convert._replace")
        target = importlib.import_module("arcodex.convert._target").Target.of(url, options)
        return bool(replace.arcodex_made(target))
    except Exception:
        return False


def _exists(url: str, options: Mapping[str, Any]) -> bool:
    if "://" not in url:
        return os.path.lexists(url)
    import fsspec

    fs, path = fsspec.core.url_to_fs(url, **dict(options))
    return bool(fs.exists(path))


def remove_url(url: str, options: Mapping[str, Any]) -> None:
    if "://" not in url:
        path = Path(url)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif os.path.lexists(path):
            path.unlink()
        return
    import fsspec

    fs, path = fsspec.core.url_to_fs(url, **dict(options))
    if fs.exists(path):
        fs.rm(path, recursive=True)
