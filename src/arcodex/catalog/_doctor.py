"""``doctor`` (what is wrong) and ``recover`` (finish or undo interrupted operations).

An operation killed part-way leaves its journal open. Recovery reads how far
it got: if its records reached the database (the write is one transaction,
so they are all there or none is), the data is complete and the operation
is rolled forward; otherwise every object it journaled as written is
removed. Nothing that arcodex did not write is ever deleted.
"""

from __future__ import annotations

import importlib
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from arcodex.errors import NotFoundError
from arcodex.model import FsspecUrl, LocalPath, Operation, OperationError, Query, utcnow
from arcodex.storage import FsspecStore, LocalStore, hash_file

if TYPE_CHECKING:
    from arcodex.catalog._catalog import Catalog

__all__ = ["DoctorReport", "Recovery", "diagnose", "recover"]

_DONE = {"committed", "rolled_back", "failed"}
_CATALOG_WRITTEN = {"catalog_write_succeeded", "hooks_started", "committed"}


@dataclass
class DoctorReport:
    """What ``doctor`` found; ``clean`` when nothing needs attention."""

    incomplete_operations: list[dict[str, Any]] = field(default_factory=list)
    orphaned_files: list[dict[str, str]] = field(default_factory=list)
    missing_artifacts: list[dict[str, str]] = field(default_factory=list)
    mismatched_artifacts: list[dict[str, Any]] = field(default_factory=list)
    stale_locks: list[dict[str, Any]] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (
            self.stale_locks
            or self.incomplete_operations
            or self.orphaned_files
            or self.missing_artifacts
            or self.mismatched_artifacts
        )

    def to_dict(self) -> dict[str, Any]:
        return {"clean": self.clean, **asdict(self)}


@dataclass
class Recovery:
    """What ``recover`` did (or would do, with ``dry_run``) to one operation."""

    operation_id: str
    action: str
    last_state: str
    decision: str  # "roll_forward" | "roll_back"
    removed: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def diagnose(catalog: Catalog, *, verify_hashes: bool = False) -> DoctorReport:
    """Look for interrupted operations, orphaned managed files and broken artifacts."""
    report = DoctorReport()
    holder = _holder(catalog)
    if holder is not None and not _still_running({**holder, "pid": holder.get("pid")}):
        report.stale_locks.append(holder)
    for op_id in catalog.journal.open_operations():
        entries = catalog.journal.read(op_id)
        last = entries[-1] if entries else {}
        report.incomplete_operations.append(
            {
                "operation_id": op_id,
                "action": last.get("action"),
                "last_state": last.get("state"),
                "user": last.get("user"),
                "pid": last.get("pid"),
                "since": entries[0].get("timestamp") if entries else None,
            }
        )
    referenced: dict[str, set[str]] = {}
    records = catalog.backend.search(
        Query.parse(["status=[active,planned,failed,deprecated,deleted]"], limit=None)
    )
    for record in records.records:
        for artifact in record.artifacts:
            if not artifact.managed:
                continue
            profile, key = _where(catalog, artifact.locator)
            if profile is None or key is None:
                continue
            referenced.setdefault(profile, set()).add(key)
            store, _ = catalog._store(profile)
            if not store.exists(key):
                report.missing_artifacts.append(
                    {
                        "record_id": record.id,
                        "artifact_id": artifact.id,
                        "location": catalog.locate(artifact),
                    }
                )
                continue
            if isinstance(store, LocalStore) and artifact.size_bytes is not None:
                path = store.full_path(key)
                if path.is_dir():
                    # A store (Zarr, Icechunk, references): the size of what it holds.
                    size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
                    sha = None
                else:
                    size = path.stat().st_size
                    sha = hash_file(path)[1] if verify_hashes else None
                expected_sha = artifact.hashes.get("sha256")
                if size != artifact.size_bytes or (sha and expected_sha and sha != expected_sha):
                    report.mismatched_artifacts.append(
                        {
                            "record_id": record.id,
                            "artifact_id": artifact.id,
                            "location": str(path),
                            "size": size,
                            "expected_size": artifact.size_bytes,
                            "sha256_matches": None if sha is None else sha == expected_sha,
                        }
                    )
    in_flight = _in_flight_keys(catalog)
    for name in catalog.config.profiles:
        try:
            store, _ = catalog._store(name)
            keys = list(store.iter_keys())
        except Exception:  # an unreachable profile is not a reason to stop looking
            continue
        known = referenced.get(name, set())
        busy = {k for p, k in in_flight if p == name}
        for key in keys:
            if not _covered(key, known) and not _covered(key, busy):
                report.orphaned_files.append({"profile": name, "key": key})
    return report


def recover(catalog: Catalog, *, dry_run: bool = False) -> list[Recovery]:
    """Roll every interrupted operation forward or back (see the module docstring)."""
    done: list[Recovery] = []
    for op_id in catalog.journal.open_operations():
        entries = catalog.journal.read(op_id)
        if not entries:
            continue
        last = entries[-1]
        if _still_running(last):
            continue
        states = {e.get("state") for e in entries}
        planned = next((e for e in entries if e.get("state") == "planned"), {})
        record_ids = list(planned.get("records") or [])
        complete = bool(states & _CATALOG_WRITTEN) or (
            "catalog_write_started" in states and _records_written(catalog, planned, record_ids)
        )
        if last.get("state") == "rollback_started":
            complete = False
        decision = (
            "roll_forward" if complete and last.get("state") != "rollback_started" else "roll_back"
        )
        recovery = Recovery(op_id, str(last.get("action")), str(last.get("state")), decision)
        if decision == "roll_back":
            for entry in reversed(entries):
                if entry.get("state") in ("artifact_backup", "artifact_undo"):
                    _restore(entry, recovery, dry_run)
                    continue
                if entry.get("state") != "artifact_written":
                    continue
                if entry.get("profile") is None and entry.get("url"):
                    _remove_url(str(entry["url"]), recovery, dry_run)
                    continue
                profile, key = entry.get("profile"), entry.get("key")
                recovery.removed.append(f"{profile}:{key}")
                if not dry_run:
                    store, _ = catalog._store(str(profile))
                    store.delete(str(key))
            if not dry_run and last.get("action") == "add" and "catalog_write_started" in states:
                for record_id in record_ids:
                    if _exists(catalog, record_id):
                        catalog.backend.purge(record_id)
        else:
            for entry in entries:
                if entry.get("state") == "artifact_backup" and entry.get("args"):
                    # The update is kept: its backup is no longer needed.
                    backup = Path(str(entry["args"]["backup"]))
                    recovery.removed.append(f"backup {backup}")
                    if not dry_run and backup.exists():
                        shutil.rmtree(backup, ignore_errors=True)
        if not dry_run:
            _close(catalog, entries, decision)
        done.append(recovery)
    holder = _holder(catalog)
    if holder is not None and not _still_running(holder):
        done.append(
            Recovery("-", "lock", "stale", "roll_back", [f"lock note of pid {holder.get('pid')}"])
        )
        if not dry_run:
            release = getattr(catalog.backend, "_release", None)
            if callable(release):
                release()
    if not catalog.journal.open_operations():
        # With nothing in flight, temporary files are leftovers of killed writes.
        for name in catalog.config.profiles:
            store, _ = catalog._store(name)
            if not isinstance(store, LocalStore):
                continue
            for key in list(store.iter_keys()):
                if _is_temp(key):
                    done.append(Recovery("-", "write", "killed", "roll_back", [f"{name}:{key}"]))
                    if not dry_run:
                        store.delete(key)
    return done


def _restore(entry: dict[str, Any], recovery: Recovery, dry_run: bool) -> None:
    """Run the restore an operation journaled with its backup (named by dotted path)."""
    target = entry.get("recover")
    if not target:
        what = f"backup {entry.get('backup')}" if entry.get("backup") else "commit"
        recovery.removed.append(f"undo by hand: {entry.get('url')} ({what})")
        return
    recovery.removed.append(f"restored {entry.get('url')}")
    if dry_run:
        return
    module, _, name = str(target).partition(":")
    if not module.startswith("arcodex."):
        return  # only arcodex's own restore functions are ever run from a journal
    function = getattr(importlib.import_module(module), name)
    function(**dict(entry.get("args") or {}))


def _remove_url(url: str, recovery: Recovery, dry_run: bool) -> None:
    """Remove a product written outside the catalog's storage (local only; else report it)."""
    if "://" in url:
        recovery.removed.append(f"orphaned (remove by hand): {url}")
        return
    recovery.removed.append(url)
    path = Path(url)
    if dry_run or not path.exists():
        return
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink()


def _still_running(entry: dict[str, Any]) -> bool:
    """Whether the process that wrote ``entry`` is alive on this host (then leave it be)."""
    import os
    import socket

    pid = entry.get("pid")
    if not isinstance(pid, int) or entry.get("host") != socket.gethostname() or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _close(catalog: Catalog, entries: list[dict[str, Any]], decision: str) -> None:
    first = entries[0]
    op_id = str(first["operation_id"])
    state = "committed" if decision == "roll_forward" else "rolled_back"
    catalog.journal.append(
        op_id, {**entries[-1], "state": state, "recovered": True, "timestamp": utcnow().isoformat()}
    )
    operation = Operation(
        id=op_id,
        action=str(first.get("action")),
        user=first.get("user"),
        status="succeeded" if decision == "roll_forward" else "rolled_back",
        finished_at=utcnow(),
        error=None
        if decision == "roll_forward"
        else OperationError(
            type="Interrupted",
            message=f"interrupted after {entries[-1].get('state')}; rolled back by recover",
        ),
    )
    catalog.backend.save_operation(operation)
    catalog.events.emit(
        f"recover.{decision}",
        f"{operation.action} {op_id} {decision.replace('_', ' ')} by recover",
        level="warning",
        operation_id=op_id,
    )
    catalog.journal.close(op_id)


def _holder(catalog: Catalog) -> dict[str, Any] | None:
    """The backend's note of its write-lock holder, if it keeps one."""
    lock_holder = getattr(catalog.backend, "lock_holder", None)
    holder = lock_holder() if callable(lock_holder) else None
    return holder if isinstance(holder, dict) else None


def _exists(catalog: Catalog, record_id: str) -> bool:
    try:
        catalog.backend.get(record_id)
    except NotFoundError:
        return False
    return True


def _where(catalog: Catalog, locator: Any) -> tuple[str | None, str | None]:
    """The profile and key a managed locator points at."""
    for name in catalog.config.profiles:
        store, _ = catalog._store(name)
        if isinstance(locator, LocalPath) and isinstance(store, LocalStore):
            path = Path(locator.path)
            full = path if path.is_absolute() else catalog.root / path
            try:
                return name, full.resolve().relative_to(store.root.resolve()).as_posix()
            except ValueError:
                continue
        if (
            isinstance(locator, FsspecUrl)
            and isinstance(store, FsspecStore)
            and locator.profile == name
        ):
            return name, store.key_of(locator.url)
    return None, None


def _records_written(catalog: Catalog, planned: dict[str, Any], record_ids: list[str]) -> bool:
    """Whether a killed operation's one database transaction landed.

    New records exist only if it did; a changed record has moved past the
    version the operation planned from.
    """
    if not record_ids:
        return False
    version = planned.get("version")
    if version is None:
        return all(_exists(catalog, i) for i in record_ids)
    try:
        return all(catalog.backend.get(i).version > int(version) for i in record_ids)
    except NotFoundError:
        return False


def _covered(key: str, keys: set[str]) -> bool:
    """Whether ``key`` is one of ``keys`` or lies inside one of them (a store's objects)."""
    if key in keys:
        return True
    parts = key.split("/")
    return any("/".join(parts[:i]) in keys for i in range(1, len(parts)))


def _in_flight_keys(catalog: Catalog) -> set[tuple[str, str]]:
    keys = set()
    for op_id in catalog.journal.open_operations():
        for entry in catalog.journal.read(op_id):
            if entry.get("state") == "artifact_written":
                keys.add((str(entry.get("profile")), str(entry.get("key"))))
    return keys


def _is_temp(key: str) -> bool:
    name = key.rpartition("/")[2]
    return name.startswith(".") and name.endswith(".tmp")
