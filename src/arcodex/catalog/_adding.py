"""Adding to a catalog: files (copied into managed storage or registered in place),
bytes and external URIs. Files and URIs are added by the ``add`` and ``add-external``
pipelines (:mod:`._add_pipeline`); :meth:`Adding.plan_add` is their dry run."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from arcodex.catalog._add_pipeline import ADD, ADD_EXTERNAL, undo_write
from arcodex.catalog._events import current_user
from arcodex.catalog._metadata import merge, metadata_of, pydantic_message
from arcodex.catalog._pipeline import PipelineContext, run_pipeline
from arcodex.catalog._running import PipelineRun
from arcodex.catalog._schemas import Policy
from arcodex.catalog._writing import CatalogWriter, refusals_logged
from arcodex.errors import NotFoundError, ValidationError
from arcodex.extract import Extracted, extract_file
from arcodex.model import Artifact, Record, check_metadata
from arcodex.storage import render_path

__all__ = ["Adding"]


class Adding(CatalogWriter):
    """The part of a catalog that adds records."""

    def add_file(
        self,
        path: str | os.PathLike[str],
        *,
        kind: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        tags: Iterable[str] = (),
        title: str | None = None,
        description: str | None = None,
        record_id: str | None = None,
        in_place: bool = False,
        extract: bool = True,
        profile: str | None = None,
        schema: str | None = None,
        schema_policy: Policy | None = None,
        require_metadata: bool = False,
        allow_duplicate: bool = False,
        user: str | None = None,
    ) -> Record:
        """Add one file: copied into managed storage, or registered where it is (``in_place``).

        A file the catalog holds already (same content, or the same path in place) is
        refused with the record's id unless ``allow_duplicate``.
        """
        return self.add_files(
            [path],
            kind=kind,
            metadata=metadata,
            tags=tags,
            title=title,
            description=description,
            record_ids=[record_id] if record_id else None,
            in_place=in_place,
            extract=extract,
            profile=profile,
            schema=schema,
            schema_policy=schema_policy,
            require_metadata=require_metadata,
            allow_duplicate=allow_duplicate,
            user=user,
        )[0]

    @refusals_logged("add")
    def add_files(
        self,
        paths: Sequence[str | os.PathLike[str]],
        *,
        kind: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        tags: Iterable[str] = (),
        title: str | None = None,
        description: str | None = None,
        record_ids: Sequence[str] | None = None,
        in_place: bool = False,
        extract: bool = True,
        profile: str | None = None,
        schema: str | None = None,
        schema_policy: Policy | None = None,
        require_metadata: bool = False,
        allow_duplicate: bool = False,
        user: str | None = None,
    ) -> list[Record]:
        """Add files as one operation: every file is checked and read before anything is
        written, and either all records are added or none.

        The operation is the ``add`` pipeline (extract-metadata, validate-record,
        plan-path, write-artifact, commit-record); :meth:`plan_add` runs the steps
        that change nothing and says what this would do.

        A file the catalog holds already (same sha256, or the same path registered in
        place), or given twice, is refused (:class:`ConflictError` naming the records;
        nothing is added) unless ``allow_duplicate``.
        """
        options = _file_options(
            paths, kind, metadata, tags, title, description, record_ids, in_place, extract,
            profile, schema, schema_policy, require_metadata, allow_duplicate,
        )  # fmt: skip
        ctx = PipelineContext(self, options, user=user or current_user())
        run_pipeline(ADD, ctx)
        records: list[Record] = ctx.state["records"]
        return records

    def plan_add(
        self,
        paths: Sequence[str | os.PathLike[str]],
        *,
        external: bool = False,
        kind: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        tags: Iterable[str] = (),
        title: str | None = None,
        description: str | None = None,
        record_ids: Sequence[str] | None = None,
        in_place: bool = False,
        extract: bool = True,
        profile: str | None = None,
        schema: str | None = None,
        schema_policy: Policy | None = None,
        require_metadata: bool = False,
        allow_duplicate: bool = False,
        media_type: str | None = None,
        format: str | None = None,
        user: str | None = None,
    ) -> PipelineRun:
        """What :meth:`add_files` (or :meth:`add_externals`, with ``external``) would do,
        changing nothing: each file's record, planned path and key fields, and why it
        would be refused (a duplicate, a schema it fails, a bad record).

        Runs the steps of the ``add`` pipeline that change nothing; the catalog, its
        files and its event log stay byte for byte as they were.
        """
        if external:
            options = _uri_options(
                [str(p) for p in paths], kind, metadata, tags, title, description,
                record_ids, media_type, format, schema, schema_policy, allow_duplicate,
            )  # fmt: skip
        else:
            options = _file_options(
                paths, kind, metadata, tags, title, description, record_ids, in_place,
                extract, profile, schema, schema_policy, require_metadata, allow_duplicate,
            )  # fmt: skip
        pipeline = ADD_EXTERNAL if external else ADD
        ctx = PipelineContext(self, options, dry_run=True, user=user or current_user())
        with self.events.muted():
            run_pipeline(pipeline, ctx)
        return PipelineRun.of(pipeline, ctx)

    @refusals_logged("add")
    def add_bytes(
        self,
        data: bytes,
        *,
        name: str,
        kind: str = "document",
        metadata: Mapping[str, Any] | None = None,
        tags: Iterable[str] = (),
        title: str | None = None,
        description: str | None = None,
        record_id: str | None = None,
        media_type: str | None = None,
        profile: str | None = None,
        schema: str | None = None,
        schema_policy: Policy | None = None,
        user: str | None = None,
    ) -> Record:
        """Store ``data`` as a managed file called ``name`` and add a record for it."""
        user = user or current_user()
        if not name or "/" in name or name in (".", ".."):
            raise ValidationError(f"bad name {name!r}: give a file name like notes.txt")
        found = Extracted()
        from arcodex.extract import FileExtractor

        FileExtractor().extract(Path(name), found)
        try:
            record = Record(
                kind=kind,
                title=title or name,
                description=description,
                metadata=merge(found.metadata, metadata_of(metadata)),
                tags=list(tags),
                created_by=user,
                updated_by=user,
                **({"id": record_id} if record_id else {}),
            )
        except ValueError as exc:
            raise ValidationError(f"cannot add {name}: {pydantic_message(exc)}") from None
        record = self._with_schema(record, schema, schema_policy, user)
        self._hook("after_record_validate", record=record)
        store, template = self._store(profile)
        self._hook("before_path_plan", record=record)
        key = render_path(
            template,
            {
                "id": record.id,
                "kind": record.kind,
                "ext": "".join(Path(name).suffixes[-1:]),
                "name": name,
                "stem": Path(name).stem,
                "metadata": record.metadata,
            },
        )
        with self.unit_of_work(
            "add", user=user, inputs=[f"bytes:{name}"], parameters={"profile": profile}
        ) as uow:
            uow.transition("planned", records=[record.id], profile=profile)
            self._hook("after_path_plan", uow=uow, record=record, key=key)
            uow.transition("artifact_write_started")
            self._hook("before_artifact_write", uow=uow, record=record, key=key)
            key, size, sha = store.write_bytes(data, key)
            undo_write(uow, store, key, profile or self.config.default_profile)
            self._hook("after_artifact_write", uow=uow, record=record, key=key)
            artifact = Artifact(
                locator=store.locator(key),
                media_type=media_type or found.media_type,
                format=found.format,
                size_bytes=size,
                hashes={"sha256": sha},
                managed=True,
            )
            record = record.model_copy(update={"artifacts": [artifact]})
            uow.transition("artifact_write_succeeded")
            (record,) = self._write_records(uow, [record])
        return record

    def add_external(
        self,
        uri: str,
        *,
        kind: str = "external",
        metadata: Mapping[str, Any] | None = None,
        tags: Iterable[str] = (),
        title: str | None = None,
        description: str | None = None,
        record_id: str | None = None,
        media_type: str | None = None,
        format: str | None = None,
        schema: str | None = None,
        schema_policy: Policy | None = None,
        allow_duplicate: bool = False,
        user: str | None = None,
    ) -> Record:
        """Register a URI arcodex does not manage; nothing is downloaded. A URI a record
        holds already is refused unless ``allow_duplicate``."""
        return self.add_externals(
            [uri],
            kind=kind,
            metadata=metadata,
            tags=tags,
            title=title,
            description=description,
            record_ids=[record_id] if record_id else None,
            media_type=media_type,
            format=format,
            schema=schema,
            schema_policy=schema_policy,
            allow_duplicate=allow_duplicate,
            user=user,
        )[0]

    @refusals_logged("add")
    def add_externals(
        self,
        uris: Sequence[str],
        *,
        kind: str = "external",
        metadata: Mapping[str, Any] | None = None,
        tags: Iterable[str] = (),
        title: str | None = None,
        description: str | None = None,
        record_ids: Sequence[str] | None = None,
        media_type: str | None = None,
        format: str | None = None,
        schema: str | None = None,
        schema_policy: Policy | None = None,
        allow_duplicate: bool = False,
        user: str | None = None,
    ) -> list[Record]:
        """Register URIs as one operation: all are added, or none (nothing is downloaded).
        A URI a record holds already, or given twice, is refused unless ``allow_duplicate``.

        The operation is the ``add-external`` pipeline (validate-uri, commit-record).
        """
        options = _uri_options(
            uris, kind, metadata, tags, title, description, record_ids, media_type, format,
            schema, schema_policy, allow_duplicate,
        )  # fmt: skip
        ctx = PipelineContext(self, options, user=user or current_user())
        run_pipeline(ADD_EXTERNAL, ctx)
        records: list[Record] = ctx.state["records"]
        return records

    @staticmethod
    def extract(path: str | os.PathLike[str], *, require_metadata: bool = False) -> dict[str, Any]:
        """What ``add`` would read from a file or store, without a catalog or any write."""
        target = Path(path).expanduser()
        if not target.exists():
            raise NotFoundError(f"{target} does not exist; check the path")
        found = extract_file(target, require=require_metadata)
        return {
            "path": str(target.resolve()),
            "kind": found.kind,
            "format": found.format,
            "media_type": found.media_type,
            "extractors": found.extractors,
            "errors": found.errors,
            "metadata": check_metadata(found.metadata),
        }


def _file_options(
    paths: Sequence[str | os.PathLike[str]],
    kind: str | None,
    metadata: Mapping[str, Any] | None,
    tags: Iterable[str],
    title: str | None,
    description: str | None,
    record_ids: Sequence[str] | None,
    in_place: bool,
    extract: bool,
    profile: str | None,
    schema: str | None,
    schema_policy: Policy | None,
    require_metadata: bool,
    allow_duplicate: bool,
) -> dict[str, Any]:
    """The ``add`` pipeline's params, as add_files takes them."""
    return {
        "paths": [os.fspath(p) for p in paths],
        "kind": kind,
        "metadata": metadata_of(metadata),
        "tags": list(tags),
        "title": title,
        "description": description,
        "record_ids": list(record_ids) if record_ids is not None else None,
        "in_place": in_place,
        "extract": extract,
        "profile": profile,
        "schema": schema,
        "schema_policy": schema_policy,
        "require_metadata": require_metadata,
        "allow_duplicate": allow_duplicate,
    }


def _uri_options(
    uris: Sequence[str],
    kind: str | None,
    metadata: Mapping[str, Any] | None,
    tags: Iterable[str],
    title: str | None,
    description: str | None,
    record_ids: Sequence[str] | None,
    media_type: str | None,
    format: str | None,
    schema: str | None,
    schema_policy: Policy | None,
    allow_duplicate: bool,
) -> dict[str, Any]:
    """The ``add-external`` pipeline's params, as add_externals takes them."""
    return {
        "uris": list(uris),
        "kind": kind or "external",
        "metadata": metadata_of(metadata),
        "tags": list(tags),
        "title": title,
        "description": description,
        "record_ids": list(record_ids) if record_ids is not None else None,
        "media_type": media_type,
        "format": format,
        "schema": schema,
        "schema_policy": schema_policy,
        "allow_duplicate": allow_duplicate,
    }
