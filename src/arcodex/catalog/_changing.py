"""Changing records: update, delete (a restorable tombstone), restore and purge."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from arcodex.catalog._events import current_user
from arcodex.catalog._metadata import pydantic_message, set_path, unset_path
from arcodex.catalog._schemas import Policy
from arcodex.catalog._writing import CatalogWriter, exists, refusals_logged
from arcodex.errors import ArcodexError, ConflictError, NotFoundError, ValidationError
from arcodex.model import Artifact, Record, utcnow

__all__ = ["Changing"]


class Changing(CatalogWriter):
    """The part of a catalog that changes records it holds."""

    @refusals_logged("update")
    def update(
        self,
        id_or_prefix: str,
        *,
        set: Mapping[str, Any] | None = None,
        unset: Iterable[str] = (),
        add_tags: Iterable[str] = (),
        remove_tags: Iterable[str] = (),
        title: str | None = None,
        description: str | None = None,
        kind: str | None = None,
        status: str | None = None,
        expected_version: int | None = None,
        schema: str | None = None,
        schema_policy: Policy | None = None,
        user: str | None = None,
    ) -> Record:
        """Change a record. ``set``/``unset`` take dotted metadata paths. With
        ``expected_version`` the update fails (ConflictError) if the record changed since."""
        user = user or current_user()
        current = self.get(id_or_prefix)
        if current.status == "deleted":
            raise ConflictError(
                f"record {current.id} is deleted; run `arcodex restore {current.id}` first"
            )
        if status == "deleted":
            raise ValidationError("use delete to remove a record, not update --status deleted")
        version = current.version if expected_version is None else expected_version
        if version != current.version:
            raise ConflictError(
                f"record {current.id} is at version {current.version}, not {expected_version}; "
                "reload it and apply the change again"
            )
        if not (set or unset or add_tags or remove_tags) and all(
            v is None for v in (title, description, kind, status, schema)
        ):
            raise ValidationError(
                f"nothing to change on {current.id}: give metadata to set or unset, tags, "
                "title, description, kind or status"
            )
        metadata = current.model_dump(mode="json")["metadata"]
        for path in unset:
            if not unset_path(metadata, path):
                raise NotFoundError(
                    f"record {current.id} has no metadata {path!r} to unset; see `arcodex show {current.id}`"
                )
        for path, value in (set or {}).items():
            set_path(metadata, path, value)
        dropped = frozenset(remove_tags)  # `set` is a parameter here
        tags = [t for t in current.tags if t not in dropped] + list(add_tags)
        changes: dict[str, Any] = {
            "metadata": metadata,
            "tags": tags,
            "version": current.version + 1,
            "updated_at": utcnow(),
            "updated_by": user,
        }
        for name, value in (
            ("title", title),
            ("description", description),
            ("kind", kind),
            ("status", status),
        ):
            if value is not None:
                changes[name] = value
        try:
            new = Record.model_validate({**current.model_dump(), **changes})
        except ValueError as exc:
            raise ValidationError(f"cannot update {current.id}: {pydantic_message(exc)}") from None
        new = self._with_schema(new, schema, schema_policy, user)
        self._hook("after_record_validate", record=new)
        with self.unit_of_work(
            "update",
            user=user,
            inputs=[current.id],
            parameters={"set": sorted((set or {}).keys()), "unset": list(unset)},
        ) as uow:
            uow.transition("planned", records=[current.id], version=version)
            new = self._replace_record(uow, current, new, version)
        return new

    def delete(self, id_or_prefix: str, *, purge: bool = False, user: str | None = None) -> Record:
        """Tombstone a record (restorable); with ``purge`` remove it and its managed files."""
        if purge:
            return self.purge(id_or_prefix, user=user)
        user = user or current_user()
        record = self.get(id_or_prefix)
        if record.status == "deleted":
            raise ConflictError(
                f"record {record.id} is already deleted; `arcodex purge {record.id}` removes it"
            )
        return self._run(
            "delete",
            record.id,
            user,
            lambda: self.backend.delete(record.id, user=user),
            undo=lambda: self.backend.restore(record.id, user=user),
        )

    def restore(self, id_or_prefix: str, *, user: str | None = None) -> Record:
        """Bring back a deleted record with the status it had."""
        user = user or current_user()
        record = self.get(id_or_prefix)
        if record.status != "deleted":
            raise ConflictError(
                f"record {record.id} is not deleted (status {record.status}); nothing to restore"
            )
        return self._run(
            "restore",
            record.id,
            user,
            lambda: self.backend.restore(record.id, user=user),
            undo=lambda: self.backend.delete(record.id, user=user),
        )

    def purge(self, id_or_prefix: str, *, user: str | None = None) -> Record:
        """Remove a record for good, and the files arcodex wrote for it (never others).

        The record goes in one transaction (undone by writing it back); its files go
        after it, journaled beforehand, so that a crash is rolled forward by `recover`
        and a file that cannot be removed stays listed (and fixable) by `doctor`.
        """
        user = user or current_user()
        record = self.get(id_or_prefix)
        remove = [self._journal_place(a) for a in record.artifacts if a.managed]
        with self.unit_of_work("purge", user=user, inputs=[record.id]) as uow:
            uow.transition("planned", records=[record.id], version=record.version, remove=remove)
            uow.transition("catalog_write_started")
            purged = self.backend.purge(record.id)
            uow.on_rollback(
                f"write {record.id} back", lambda: self._put_back(record), record_id=record.id
            )
            uow.transition("catalog_write_succeeded")
            uow.transition("artifact_delete_started")
            for artifact in purged.artifacts:
                try:
                    self._delete_managed(artifact)
                except (ArcodexError, OSError) as exc:
                    # The record is gone for good: the file stays an orphan the journal names.
                    uow.transition(
                        "artifact_delete_failed", location=self.locate(artifact), error=str(exc)
                    )
            uow.operation.outputs = [record.id]
        return purged

    def _journal_place(self, artifact: Artifact) -> dict[str, str]:
        """Where a managed artifact is, as a journal keeps it (profile and key, or a path)."""
        profile, key = self._where(artifact.locator)
        if profile is not None and key is not None:
            return {"profile": profile, "key": key}
        return {"path": self.locate(artifact)}

    def _put_back(self, record: Record) -> None:
        if not exists(self.backend, record.id):
            self.backend.add([record])

    def _run(
        self,
        action: str,
        record_id: str,
        user: str,
        fn: Callable[[], Record],
        undo: Callable[[], Any] | None = None,
    ) -> Record:
        version = self.backend.get(record_id).version
        with self.unit_of_work(action, user=user, inputs=[record_id]) as uow:
            uow.transition("planned", records=[record_id], version=version)
            uow.transition("catalog_write_started")
            result = fn()
            if undo is not None:
                uow.on_rollback(f"undo {action} of {record_id}", undo, record_id=record_id)
            uow.transition("catalog_write_succeeded")
            uow.operation.outputs = [record_id]
        return result
