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

from arcodex.catalog._orphans import (
    Fix,
    fix_orphans,
    journal_proof,
    leftovers,
    made_by_arcodex,
    proof_of,
    remove_url,
)
from arcodex.catalog._writing import content_digest, restore_record
from arcodex.errors import NotFoundError
from arcodex.model import Operation, OperationError, Query, Record, utcnow
from arcodex.storage import LocalStore, hash_file, local_content_size

if TYPE_CHECKING:
    from arcodex.catalog._writing import CatalogWriter

__all__ = ["DoctorReport", "Recovery", "diagnose", "doctor_fix", "recover"]

_DONE = {"committed", "rolled_back", "failed"}
_CATALOG_WRITTEN = {"catalog_write_succeeded", "hooks_started", "committed"}


@dataclass
class DoctorReport:
    """What ``doctor`` found; ``clean`` when nothing needs attention.

    ``orphaned_files`` are unreferenced objects of the profiles, each with the
    ``proof`` that arcodex wrote it (``journal``, ``provenance`` or None) and the
    ``root`` of the whole it belongs to; ``orphaned_products`` are leftovers of
    finished operations outside the profiles. After a fix the lists say what is
    still there, and ``fix`` what was (or would be) removed and what was kept.
    """

    incomplete_operations: list[dict[str, Any]] = field(default_factory=list)
    orphaned_files: list[dict[str, Any]] = field(default_factory=list)
    orphaned_products: list[dict[str, Any]] = field(default_factory=list)
    missing_artifacts: list[dict[str, str]] = field(default_factory=list)
    mismatched_artifacts: list[dict[str, Any]] = field(default_factory=list)
    stale_locks: list[dict[str, Any]] = field(default_factory=list)
    fix: Fix | None = None

    @property
    def clean(self) -> bool:
        return not (
            self.stale_locks
            or self.incomplete_operations
            or self.orphaned_files
            or self.orphaned_products
            or self.missing_artifacts
            or self.mismatched_artifacts
        )

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if k != "fix"}
        fix = self.fix.to_dict() if self.fix else {"would_remove": [], "removed": [], "kept": []}
        return {"clean": self.clean, **data, **{k: v for k, v in fix.items() if k != "dry_run"}}


@dataclass
class Recovery:
    """What ``recover`` did (or, with ``dry_run``, would do) to one operation."""

    operation_id: str
    action: str
    last_state: str
    decision: str  # "roll_forward" | "roll_back"
    dry_run: bool = False
    removed: list[str] = field(default_factory=list)
    would_remove: list[str] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)
    would_restore: list[str] = field(default_factory=list)
    kept: list[dict[str, str]] = field(default_factory=list)

    def remove(self, what: str) -> None:
        (self.would_remove if self.dry_run else self.removed).append(what)

    def restore(self, what: str) -> None:
        (self.would_restore if self.dry_run else self.restored).append(what)

    def keep(self, what: str, reason: str) -> None:
        self.kept.append({"where": what, "reason": reason})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def diagnose(catalog: CatalogWriter, *, verify_hashes: bool = False) -> DoctorReport:
    """Look for interrupted operations, orphaned managed files and broken artifacts."""
    report = DoctorReport()
    holder = _holder(catalog)
    if holder is not None and not _still_running(catalog, None, holder):
        report.stale_locks.append(holder)
    for op_id in catalog.journal.open_operations():
        entries = catalog.journal.read(op_id)
        last = entries[-1] if entries else {}
        # A pipeline's step marks say where it was; the last state says how far it got.
        states = [e for e in entries if not str(e.get("state", "")).startswith("step_")]
        step = next((e.get("step") for e in reversed(entries) if e.get("step")), None)
        running = _still_running(catalog, op_id, last)
        report.incomplete_operations.append(
            {
                "operation_id": op_id,
                "action": last.get("action"),
                "last_state": (states[-1] if states else last).get("state"),
                "step": step,
                "user": last.get("user"),
                "pid": last.get("pid"),
                "host": last.get("host"),
                "since": entries[0].get("timestamp") if entries else None,
                # Still running (its lease is held): recover leaves it be.
                "running": running,
                # An ingestion's periods committed before it stopped (recover keeps them).
                "committed_periods": sum(e.get("state") == "period_committed" for e in entries),
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
            profile, key = catalog._where(artifact.locator)
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
                    # A store (Zarr, Icechunk, references): the size of what it holds, but
                    # not what a new tag rewrites.
                    size = local_content_size(path, artifact.format)
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
    in_flight = journal_proof(catalog, finished=False)
    journaled = journal_proof(catalog)
    made: dict[str, bool] = {}
    for name in catalog.config.profiles:
        try:
            store, _ = catalog._store(name)
            keys = list(store.iter_keys())
        except Exception:  # an unreachable profile is not a reason to stop looking
            continue
        known = referenced.get(name, set())
        for key in keys:
            if _covered(key, known) or proof_of(name, store, key, in_flight, None)[0]:
                continue
            proof, root = proof_of(name, store, key, journaled, made)
            report.orphaned_files.append(
                {"profile": name, "key": key, "proof": proof, "root": root}
            )
    report.orphaned_products = leftovers(catalog, journaled)
    return report


def doctor_fix(
    catalog: CatalogWriter, *, verify_hashes: bool = False, dry_run: bool = False
) -> DoctorReport:
    """Remove the orphans arcodex is proven to have written; the report as things are after."""
    found = diagnose(catalog, verify_hashes=verify_hashes)
    fix = fix_orphans(catalog, found.orphaned_files, found.orphaned_products, dry_run=dry_run)
    report = found if dry_run else diagnose(catalog, verify_hashes=verify_hashes)
    report.fix = fix
    if fix.removed:
        catalog.events.emit(
            "doctor.fixed",
            f"doctor removed {len(fix.removed)} orphans",
            level="warning",
            removed=fix.removed[:1000],
        )
    return report


def recover(catalog: CatalogWriter, *, dry_run: bool = False) -> list[Recovery]:
    """Roll every interrupted operation forward or back (see the module docstring)."""
    done: list[Recovery] = []
    for op_id in catalog.journal.open_operations():
        entries = catalog.journal.read(op_id)
        if not entries:
            continue
        last = entries[-1]
        if _still_running(catalog, op_id, last):
            continue
        decision = "roll_forward" if _complete(catalog, entries) else "roll_back"
        recovery = Recovery(
            op_id, str(last.get("action")), str(last.get("state")), decision, dry_run
        )
        if decision == "roll_back":
            _roll_back(catalog, entries, recovery)
        else:
            _roll_forward(catalog, entries, recovery)
        if not dry_run:
            _close(catalog, entries, decision)
        done.append(recovery)
    holder = _holder(catalog)
    if holder is not None and not _still_running(catalog, None, holder):
        lock = Recovery("-", "lock", "stale", "roll_back", dry_run)
        lock.remove(f"lock note of pid {holder.get('pid')}")
        done.append(lock)
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
                    temp = Recovery("-", "write", "killed", "roll_back", dry_run)
                    temp.remove(f"{name}:{key}")
                    done.append(temp)
                    if not dry_run:
                        store.delete(key)
    return done


def _complete(catalog: CatalogWriter, entries: list[dict[str, Any]]) -> bool:
    """Whether an interrupted operation's one database transaction landed."""
    states = {e.get("state") for e in entries}
    if entries[-1].get("state") == "rollback_started":
        return False
    if states & _CATALOG_WRITTEN:
        return True
    if "catalog_write_started" not in states:
        return False
    planned = next((e for e in entries if e.get("state") == "planned"), {})
    record_ids = list(planned.get("records") or [])
    if entries[0].get("action") == "purge":
        return bool(record_ids) and not any(_exists(catalog, i) for i in record_ids)
    return _records_written(catalog, planned, record_ids)


def _roll_back(catalog: CatalogWriter, entries: list[dict[str, Any]], recovery: Recovery) -> None:
    """Undo, newest first, every write the operation journaled."""
    dry_run = recovery.dry_run
    for entry in reversed(entries):
        state = entry.get("state")
        if state == "artifact_staged":
            _run_journaled(catalog, entry, "recover", recovery)
        elif state in ("artifact_backup", "artifact_undo"):
            _restore(entry, recovery, dry_run)
        elif state == "record_saved":
            _restore_saved(catalog, entry, recovery)
        elif state == "artifact_written":
            if entry.get("profile") is None and entry.get("url"):
                _remove_url(str(entry["url"]), recovery, dry_run)
                continue
            profile, key = entry.get("profile"), entry.get("key")
            recovery.remove(f"{profile}:{key}")
            if not dry_run:
                store, _ = catalog._store(str(profile))
                store.delete(str(key))
    states = {e.get("state") for e in entries}
    if not dry_run and entries[0].get("action") == "add" and "catalog_write_started" in states:
        planned = next((e for e in entries if e.get("state") == "planned"), {})
        for record_id in planned.get("records") or []:
            if _exists(catalog, record_id):
                catalog.backend.purge(record_id)


def _roll_forward(
    catalog: CatalogWriter, entries: list[dict[str, Any]], recovery: Recovery
) -> None:
    """Finish what the operation would have done after its records were written."""
    for entry in entries:
        state = entry.get("state")
        if state == "artifact_staged":
            _run_journaled(catalog, entry, "forward", recovery)
        elif state == "artifact_backup" and entry.get("args"):
            # The update is kept: its backup is no longer needed.
            backup = Path(str(entry["args"]["backup"]))
            recovery.remove(f"backup {backup}")
            if not recovery.dry_run and backup.exists():
                shutil.rmtree(backup, ignore_errors=True)
        elif state == "planned" and entry.get("remove"):
            # A purge whose record is gone: its files go too.
            for item in entry["remove"]:
                _delete_planned(catalog, item, recovery)


def _delete_planned(catalog: CatalogWriter, item: dict[str, Any], recovery: Recovery) -> None:
    if item.get("profile") is not None and item.get("key") is not None:
        recovery.remove(f"{item['profile']}:{item['key']}")
        if not recovery.dry_run:
            catalog.storage(str(item["profile"])).delete(str(item["key"]))
    elif item.get("path"):
        _remove_url(str(item["path"]), recovery, recovery.dry_run)


def _run_journaled(
    catalog: CatalogWriter, entry: dict[str, Any], which: str, recovery: Recovery
) -> None:
    """Run the journaled undo (``recover``) or completion (``forward``) of a staged write."""
    target = str(entry.get(which) or "")
    module, _, name = target.partition(":")
    args = dict(entry.get("args") or {})
    if not module.startswith("arcodex."):
        # Only arcodex's own functions are ever run from a journal.
        recovery.keep(str(entry.get("url")), f"no arcodex function to {which} it")
        return
    if which == "recover":
        recovery.restore(str(entry.get("url")))
    for leftover in (args.get("work"), args.get("backup")):
        if leftover and leftover != args.get("final"):
            recovery.remove(str(leftover))
    if recovery.dry_run:
        return
    if entry.get("profile"):
        # Credentials come from the profile (the journal keeps none).
        store = catalog.storage(str(entry["profile"]))
        fs = getattr(store, "fs", None)
        args["storage_options"] = dict(getattr(fs, "storage_options", {}) or {})
    getattr(importlib.import_module(module), name)(**args)


def _restore(entry: dict[str, Any], recovery: Recovery, dry_run: bool) -> None:
    """Run the restore an operation journaled with its backup (named by dotted path)."""
    target = entry.get("recover")
    if not target:
        what = f"backup {entry.get('backup')}" if entry.get("backup") else "commit"
        recovery.keep(str(entry.get("url")), f"undo by hand ({what})")
        return
    recovery.restore(str(entry.get("url")))
    if dry_run:
        return
    module, _, name = str(target).partition(":")
    if not module.startswith("arcodex."):
        return  # only arcodex's own restore functions are ever run from a journal
    function = getattr(importlib.import_module(module), name)
    function(**dict(entry.get("args") or {}))


def _restore_saved(catalog: CatalogWriter, entry: dict[str, Any], recovery: Recovery) -> None:
    """Write back a record as it was before the unit wrote over it (``_stage_record``),
    unless someone has changed it since."""
    saved = Record.model_validate(entry["record"])
    written = str(entry.get("written") or "")
    try:
        current = catalog.backend.get(saved.id)
    except NotFoundError:
        return
    if content_digest(current) != written:
        recovery.keep(f"record {saved.id}", "changed since the interrupted write; left as it is")
        return
    recovery.restore(f"record {saved.id}")
    if not recovery.dry_run:
        restore_record(catalog.backend, saved, written)


def _remove_url(url: str, recovery: Recovery, dry_run: bool) -> None:
    """Remove a product written outside the catalog's storage (a remote one only with
    arcodex's provenance marker, read with credentials from the environment)."""
    if "://" in url:
        if not made_by_arcodex(url, {}):
            recovery.keep(url, "nothing proves arcodex wrote it; remove it by hand")
            return
        recovery.remove(url)
        if not dry_run:
            remove_url(url, {})
        return
    recovery.remove(url)
    path = Path(url)
    if dry_run or not path.exists():
        return
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink()


def _still_running(catalog: CatalogWriter, operation_id: str | None, entry: dict[str, Any]) -> bool:
    """Whether the operation that wrote ``entry`` still runs (then leave it be): its lease
    is held, on any host sharing the catalog. With leases only this host sees (pids), this
    process's own entries are never running (recovery runs between its operations)."""
    import os

    if not catalog.leases.shared and entry.get("pid") == os.getpid():
        return False
    return catalog.leases.running(operation_id, entry)


def _close(catalog: CatalogWriter, entries: list[dict[str, Any]], decision: str) -> None:
    first = entries[0]
    op_id = str(first["operation_id"])
    # An ingestion's period commits are its checkpoints: recover keeps them (the next run
    # resumes after them), so the operation was interrupted, not rolled back.
    # (An overwrite's rebuild is journaled as written, and removed: nothing of it is kept.)
    kept = [str(e["period"]) for e in entries if e.get("state") == "period_committed"]
    if first.get("action") != "ingest" or any(
        e.get("state") == "artifact_written" for e in entries
    ):
        kept = []
    if decision == "roll_forward":
        state, status, error = "committed", "succeeded", None
    elif kept:
        state, status = "failed", "failed"
        error = OperationError(
            type="Interrupted",
            message=(
                f"interrupted after {entries[-1].get('state')}; the {len(kept)} committed "
                f"periods ({kept[0]} to {kept[-1]}) are kept: run the ingestion again to "
                "resume after them"
            ),
        )
    else:
        state, status = "rolled_back", "rolled_back"
        error = OperationError(
            type="Interrupted",
            message=f"interrupted after {entries[-1].get('state')}; rolled back by recover",
        )
    catalog.journal.append(
        op_id, {**entries[-1], "state": state, "recovered": True, "timestamp": utcnow().isoformat()}
    )
    running = catalog.backend.operations(status="running", limit=1000)
    known = next((o for o in running if o.id == op_id), None)
    operation = Operation(
        id=op_id,
        action=str(first.get("action")),
        user=first.get("user"),
        status=status,
        finished_at=utcnow(),
        error=error,
    )
    if known is not None:
        operation = known.model_copy(
            update={"status": status, "finished_at": operation.finished_at, "error": error}
        )
    if kept:
        operation.parameters = {**operation.parameters, "committed_periods": kept}
    catalog.backend.save_operation(operation)
    catalog.events.emit(
        f"recover.{decision}",
        f"{operation.action} {op_id} {decision.replace('_', ' ')} by recover",
        level="warning",
        operation_id=op_id,
    )
    catalog.journal.close(op_id)


def _holder(catalog: CatalogWriter) -> dict[str, Any] | None:
    """The backend's note of its write-lock holder, if it keeps one."""
    lock_holder = getattr(catalog.backend, "lock_holder", None)
    holder = lock_holder() if callable(lock_holder) else None
    return holder if isinstance(holder, dict) else None


def _exists(catalog: CatalogWriter, record_id: str) -> bool:
    try:
        catalog.backend.get(record_id)
    except NotFoundError:
        return False
    return True


def _records_written(
    catalog: CatalogWriter, planned: dict[str, Any], record_ids: list[str]
) -> bool:
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


def _is_temp(key: str) -> bool:
    name = key.rpartition("/")[2]
    return name.startswith(".") and name.endswith(".tmp")
