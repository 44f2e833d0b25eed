"""Writing records in units of work: the boundary of every operation, its journal,
hooks and log, the schema policy applied to what is written, and rollback.

:class:`CatalogWriter` is what every part that changes a catalog builds on
(adding, changing, health) and what a pipeline step receives as ``ctx.catalog``.
"""

from __future__ import annotations

import functools
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from arcodex.backends import CatalogBackend
from arcodex.catalog._events import current_user
from arcodex.catalog._hooks import HookContext, HookResult
from arcodex.catalog._journal import UnitOfWork
from arcodex.catalog._metadata import merge, pydantic_message
from arcodex.catalog._opstate import released
from arcodex.catalog._reading import CatalogReader
from arcodex.catalog._schemas import Policy, SchemaResult, schema_parts
from arcodex.errors import ArcodexError, NotFoundError, StorageError, ValidationError
from arcodex.model import Artifact, FsspecUrl, LocalPath, Operation, OperationError, Record, utcnow
from arcodex.storage import FsspecStore

__all__ = ["CatalogWriter", "content_digest", "exists", "refusals_logged", "restore_record"]

P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S", bound="CatalogWriter")


def refusals_logged(
    action: str,
) -> Callable[[Callable[Concatenate[S, P], R]], Callable[Concatenate[S, P], R]]:
    """Log a ValidationError the method raises (bad input is refused, and logged)."""

    def wrap(fn: Callable[Concatenate[S, P], R]) -> Callable[Concatenate[S, P], R]:
        def run(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
            user = kwargs.get("user")
            with self._checking(action, user if isinstance(user, str) else current_user()):
                return fn(self, *args, **kwargs)

        functools.update_wrapper(run, fn)
        return run

    return wrap


def exists(backend: CatalogBackend, record_id: str) -> bool:
    """Whether the backend holds ``record_id``."""
    try:
        backend.get(record_id)
    except NotFoundError:
        return False
    return True


def content_digest(record: Record) -> str:
    """A digest of what a record says (not its version or when it was written)."""
    import hashlib
    import json

    data = record.model_dump(mode="json", exclude={"version", "updated_at", "updated_by"})
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def restore_record(backend: CatalogBackend, saved: Record, written: str) -> bool:
    """Write ``saved`` back over the record a unit wrote (``written``: that write's
    :func:`content_digest`); nothing when the write never landed, someone wrote the
    record since, or it is gone. True if restored."""
    try:
        current = backend.get(saved.id)
    except NotFoundError:
        return False
    if content_digest(current) != written:
        return False
    backend.update(saved.model_copy(update={"version": current.version + 1}), current.version)
    return True


class CatalogWriter(CatalogReader):
    """Units of work and record writes, shared by every part that changes a catalog."""

    def add_records(self, records: Sequence[Record], *, user: str | None = None) -> list[Record]:
        """Add prepared records (their artifacts already in place) in one transaction.

        Bulk loads are not checked for duplicates (:meth:`add_files` is).
        """
        with self.unit_of_work("add", user=user, parameters={"count": len(records)}) as uow:
            uow.transition("planned", count=len(records))
            written = self._write_records(uow, records)
        return written

    def _delete_managed(self, artifact: Artifact) -> None:
        """Remove an object arcodex wrote (never anything else)."""
        if not artifact.managed:
            return
        loc = artifact.locator
        if isinstance(loc, LocalPath):
            path = Path(self.locate(artifact))
            with suppress(FileNotFoundError):
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink()
        elif isinstance(loc, FsspecUrl) and loc.profile:
            store, _ = self._store(loc.profile)
            key = store.key_of(loc.url) if isinstance(store, FsspecStore) else None
            if key is None:
                raise StorageError(
                    f"{loc.url} is not under storage profile {loc.profile!r} any more; "
                    "remove it by hand if it should go"
                )
            store.delete(key)

    def _write_records(self, uow: UnitOfWork, records: Sequence[Record]) -> list[Record]:
        """Insert records in one transaction, undoable by purging them again; the records
        as written (a ``before_record_commit`` hook may have added metadata)."""
        records = list(records)
        if self.hooks.names("before_record_commit"):
            records = [self._before_commit(uow, r) for r in records]
        uow.transition("catalog_write_started")
        self.backend.add(records)
        ids = [r.id for r in records]
        uow.on_rollback(
            "remove the records added",
            lambda: [self.backend.purge(i) for i in ids if exists(self.backend, i)],
            records=ids[:1000],
        )
        uow.transition("catalog_write_succeeded")
        uow.transition("hooks_started")
        if self.hooks.names("after_record_commit"):
            for record in records:
                self._hook("after_record_commit", uow=uow, record=record)
        uow.operation.outputs = ids[:1000]
        return records

    def _replace_record(
        self, uow: UnitOfWork, current: Record, new: Record, expected_version: int | None = None
    ) -> Record:
        """Write ``new`` over ``current`` in this unit, undoable by writing ``current`` back."""
        version = current.version if expected_version is None else expected_version
        if self.hooks.names("before_record_commit"):
            new = self._before_commit(uow, new)
        uow.transition("catalog_write_started")
        self.backend.update(new, expected_version=version)
        uow.on_rollback(
            f"restore {current.id} as it was",
            lambda: self.backend.update(
                current.model_copy(update={"version": new.version + 1}),
                expected_version=new.version,
            ),
            record_id=current.id,
        )
        uow.transition("catalog_write_succeeded")
        uow.transition("hooks_started")
        self._hook("after_record_commit", uow=uow, record=new)
        uow.operation.outputs = [new.id]
        return new

    def _stage_record(self, uow: UnitOfWork, current: Record, new: Record) -> Record:
        """Write ``new`` over ``current`` now, before the unit ends, journaled so that the
        unit's rollback, or ``recover`` after a kill, writes ``current`` back.

        For a record that says what a unit is doing while it does it (a group member
        ``running``): the write is seen at once, and undone unless the unit finishes.
        What is written back is what the record said before; it is not written back
        over a record someone changed since (a later run's outcome stays).
        """
        written = content_digest(new)
        uow.transition(
            "record_saved",
            record_id=current.id,
            record=current.model_dump(mode="json"),
            written=written,
        )
        self.backend.update(new, expected_version=current.version)
        uow.on_rollback(
            f"restore {current.id} as it was",
            lambda: restore_record(self.backend, current, written),
            record_id=current.id,
        )
        return new

    def _before_commit(self, uow: UnitOfWork, record: Record) -> Record:
        updates = self._hook("before_record_commit", uow=uow, record=record).metadata
        if not updates:
            return record
        try:
            return Record.model_validate(
                {**record.model_dump(), "metadata": merge(record.metadata, updates)}
            )
        except ValueError as exc:
            raise ValidationError(
                f"a before_record_commit hook gave {record.id} bad metadata: {pydantic_message(exc)}"
            ) from None

    def _hook(
        self,
        point: str,
        *,
        uow: UnitOfWork | None = None,
        record: Record | None = None,
        path: Path | None = None,
        key: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> HookResult:
        """Run the hooks at ``point`` (nothing to do when none is registered)."""
        if not self.hooks.names(point):
            return HookResult()
        context = HookContext(
            point,
            operation=uow.operation if uow else None,
            record=record,
            path=path,
            key=key,
            metadata=dict(metadata or {}),
        )
        return self.hooks.run(context)

    @contextmanager
    def unit_of_work(
        self,
        action: str,
        *,
        user: str | None = None,
        inputs: Sequence[str] = (),
        parameters: Mapping[str, Any] | None = None,
    ) -> Iterator[UnitOfWork]:
        """Run one operation: journaled, logged, recorded, and rolled back on failure.

        ``uow.transition(state)`` journals progress durably;
        ``uow.on_rollback(description, fn)`` registers what undoes the work done so far.
        """
        operation = Operation(
            action=action,
            user=user or current_user(),
            inputs=list(inputs),
            parameters=dict(parameters or {}),
        )
        self.events.emit(
            "operation.started",
            f"{action} started",
            operation_id=operation.id,
            user=operation.user,
            action=action,
        )
        lease = self.leases.hold(operation.id)
        uow = UnitOfWork(operation, self.journal, self.events, lease)
        # The lease is let go last, once the journal is closed: another host that finds the
        # lease free and the journal open knows the process is gone.
        with released(lease):
            try:
                uow.transition("started")
                yield uow
                uow.transition("committed")
            except BaseException as exc:
                if uow.state == "committed":
                    # Only the failure injection after the commit lands here: the work is done.
                    self._finish(operation)
                    self._close_journal(operation.id)
                    self._after_commit(uow)
                    raise
                try:
                    self.hooks.run(
                        HookContext("on_operation_error", operation=operation, error=exc),
                        raise_required=False,
                    )
                    uow.rollback(exc)
                    self._close_journal(operation.id)
                    self.hooks.run(
                        HookContext("on_operation_rollback", operation=operation, error=exc),
                        raise_required=False,
                    )
                finally:
                    self._finish(operation, error=exc)
                raise
            self._finish(operation, shortfall=uow.shortfall)
            self._close_journal(operation.id)
        self._after_commit(uow)

    @staticmethod
    def _after_commit(uow: UnitOfWork) -> None:
        for after in uow.after:
            with suppress(Exception):
                after()

    def _close_journal(self, operation_id: str) -> None:
        with suppress(OSError):
            self.journal.close(operation_id)

    @contextmanager
    def _checking(self, action: str, user: str) -> Iterator[None]:
        """Log input that is refused before an operation starts."""
        try:
            yield
        except ValidationError as exc:
            with suppress(ArcodexError):
                self.events.emit(
                    "validation.failed",
                    f"{action} refused: {exc}",
                    level="warning",
                    user=user,
                    error=exc,
                    action=action,
                )
            raise

    def _check_schema(self, record: Record, schema: str | None = None) -> SchemaResult:
        name, version = record.schema_name, record.schema_version
        if schema:
            name, version = schema_parts(schema)
        if not name:
            return SchemaResult(
                True, None, warnings=["the record names no schema"], record_id=record.id
            )
        result = self.schemas.validate(record.metadata, name, version)
        result.record_id = record.id
        return result

    def _with_schema(
        self, record: Record, schema: str | None, policy: Policy | None, user: str
    ) -> Record:
        """Attach ``schema`` to a record about to be written and apply the policy to it."""
        policy = policy or self.config.schema_policy
        if schema:
            name, version = schema_parts(schema)
            name, version = self.schemas.resolve(name, version).split("@", 1)
            record = record.model_copy(update={"schema_name": name, "schema_version": version})
        if policy == "off" or not record.schema_name:
            return record
        result = self._check_schema(record)
        if result.valid:
            return record
        summary = result.errors[0] + (
            f" (and {len(result.errors) - 1} more)" if len(result.errors) > 1 else ""
        )
        if policy == "strict":
            raise ValidationError(
                f"record {record.id} does not match schema {result.schema}: {summary}; "
                "fix the metadata, or use schema policy warn"
            )
        self.events.emit(
            "validation.warning",
            f"record {record.id} does not match schema {result.schema}: {summary}",
            level="warning",
            record_id=record.id,
            user=user,
            schema=result.schema,
            errors=result.errors[:50],
        )
        return record

    def _finish(
        self,
        operation: Operation,
        error: BaseException | None = None,
        shortfall: str | None = None,
    ) -> None:
        """End ``operation``: failed by ``error``, or committed but ``shortfall`` short of
        what was asked (failed too, its work kept: see ``UnitOfWork.fell_short``)."""
        operation.finished_at = utcnow()
        if error is None and shortfall is None:
            operation.status = "succeeded"
        elif error is None:
            operation.status = "failed"
            operation.error = OperationError(type="Incomplete", message=str(shortfall)[:2000])
        else:
            operation.status = "failed"
            operation.error = OperationError(type=type(error).__name__, message=str(error)[:2000])
        # The operation has happened (or failed) already: a log that cannot be
        # written must not turn that into a different error.
        with suppress(ArcodexError):
            self.events.emit(
                f"operation.{operation.status}",
                f"{operation.action} {operation.status}"
                + (f": {operation.error.message}" if operation.error else ""),
                level="error" if error is not None else "warning" if shortfall else "info",
                operation_id=operation.id,
                record_id=operation.outputs[0] if len(operation.outputs) == 1 else None,
                user=operation.user,
                error=error,
                action=operation.action,
                outputs=operation.outputs[:100],
            )
        try:
            self.backend.save_operation(operation)
        except ArcodexError:
            if error is None:
                raise
            # The original failure matters more than the failure to log it.
